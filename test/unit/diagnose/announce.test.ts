import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { checkAnnounce, type AnnounceInput } from '../../../src/diagnose/announce.js'
import type { BootstrapResult } from '../../../src/diagnose/bootstrap.js'
import type { NetworkFacts } from '../../../src/diagnose/environment.js'

const HOST_NET: NetworkFacts = {
  container: [],
  interfaces: [],
  bridges: [],
  defaultGateway: undefined,
  defaultInterface: undefined,
  mode: 'host',
  reason: 'test'
}
const BRIDGE_NET: NetworkFacts = {
  container: ['/.dockerenv exists'],
  interfaces: [{ name: 'eth0', address: '172.17.0.2', cidr: '172.17.0.2/16', family: 'IPv4' }],
  bridges: [],
  defaultGateway: '172.17.0.1',
  defaultInterface: 'eth0',
  mode: 'bridge',
  reason: 'test'
}

function peer (host: string, observed?: string): BootstrapResult {
  return { entry: `/ip4/${host}/tcp/9000`, findings: [], malformed: false, host, ...(observed !== undefined ? { observed } : {}) }
}

function check (
  over: Partial<Omit<AnnounceInput, 'listen' | 'announce'>> & { listen?: string[], announce?: string[] }
): ReturnType<typeof checkAnnounce>[number] {
  const findings = checkAnnounce({
    listen: (over.listen ?? ['/ip4/0.0.0.0/tcp/9000']).map(a => multiaddr(a)),
    announce: (over.announce ?? []).map(a => multiaddr(a)),
    network: over.network ?? HOST_NET,
    peers: over.peers ?? []
  })
  assert.equal(findings.length, 1)
  return findings[0] ?? assert.fail()
}

describe('diagnose announce: what this node tells peers to dial', () => {
  it('only loopback announced, with a remote peer: fail, fix names CACHE_LISTEN_ADDRS and the address peers see', () => {
    const f = check({ listen: ['/ip4/127.0.0.1/tcp/9000'], peers: [peer('10.0.0.9', '/ip4/10.0.0.4/tcp/51000')] })
    assert.equal(f.verdict, 'fail')
    assert.match(f.summary, /only loopback is announced \(\/ip4\/127\.0\.0\.1\/tcp\/9000\)/)
    assert.equal(
      f.fix,
      'listen on all interfaces (CACHE_LISTEN_ADDRS=/ip4/0.0.0.0/tcp/9000) or announce a reachable address: CACHE_ANNOUNCE_ADDRS=/ip4/10.0.0.4/tcp/9000'
    )
  })

  it('only loopback announced and no peer to judge by: a warning', () => {
    const f = check({ listen: ['/ip4/127.0.0.1/tcp/9000'] })
    assert.equal(f.verdict, 'warn')
    assert.match(f.fix ?? '', /CACHE_ANNOUNCE_ADDRS=\/ip4\/<host-ip>\/tcp\/9000/)
  })

  it('loopback is fine when every bootstrap peer is on this host', () => {
    const f = check({ listen: ['/ip4/127.0.0.1/tcp/9000'], peers: [peer('127.0.0.1')] })
    assert.equal(f.verdict, 'ok')
    assert.match(f.summary, /every bootstrap peer is on this host/)
  })

  it("a container's bridge address (172.17.x) announced: fail, fix publishes the port and announces the host address", () => {
    const f = check({ announce: ['/ip4/172.17.0.2/tcp/9000'], network: BRIDGE_NET, peers: [peer('10.0.0.9', '/ip4/10.0.0.4/tcp/40000')] })
    assert.equal(f.verdict, 'fail')
    assert.match(
      f.summary,
      /the container's address on its bridge network \(172\.17\.0\.2\/16\); other hosts can't dial it \(peers see this node as 10\.0\.0\.4\)/
    )
    assert.equal(
      f.fix,
      "run the sidecar with `--network host`, or publish the port and announce the host's address: `-p 9000:9000 -e CACHE_ANNOUNCE_ADDRS=/ip4/10.0.0.4/tcp/9000`"
    )
  })

  it("the host's address announced from a bridge network is fine", () => {
    const f = check({ announce: ['/ip4/10.0.0.4/tcp/9000'], network: BRIDGE_NET, peers: [peer('10.0.0.9', '/ip4/10.0.0.4/tcp/40000')] })
    assert.equal(f.verdict, 'ok')
    assert.match(f.summary, /announces \/ip4\/10\.0\.0\.4\/tcp\/9000 \(from CACHE_ANNOUNCE_ADDRS\); peers see this node as 10\.0\.0\.4/)
  })

  it('peers observing another address than the announced one: NAT, fix announces the observed address', () => {
    const f = check({ announce: ['/ip4/10.0.0.4/tcp/9000'], peers: [peer('198.51.100.20', '/ip4/203.0.113.7/tcp/40000')] })
    assert.equal(f.verdict, 'warn')
    assert.match(f.summary, /peers see this node as 203\.0\.113\.7, which it does not announce/)
    assert.match(f.fix ?? '', /CACHE_ANNOUNCE_ADDRS=\/ip4\/203\.0\.113\.7\/tcp\/9000/)
  })

  it('an announced port other than the one listened on: a warning naming both', () => {
    const f = check({ announce: ['/ip4/10.0.0.4/tcp/19000'] })
    assert.equal(f.verdict, 'warn')
    assert.match(f.summary, /announces port 19000 but listens on 9000/)
    assert.match(f.fix ?? '', /CACHE_ANNOUNCE_ADDRS=\/ip4\/10\.0\.0\.4\/tcp\/9000.*-p 19000:9000/)
  })
})
