import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import { checkListen } from '../../../src/diagnose/listen.js'
import type { LiveSidecar } from '../../../src/diagnose/live.js'
import type { Finding } from '../../../src/diagnose/finding.js'

function byCheck (findings: Finding[], check: string): Finding {
  return findings.find(f => f.check === check) ?? assert.fail(`no ${check} finding`)
}

function live (p2pPort: number, dataPort: number | null): LiveSidecar {
  return {
    url: 'http://127.0.0.1:9080',
    rttMs: 1,
    status: { healthz: 200, readyz: 200, v2: 200 },
    p2p: {
      peerId: '12D3KooWtest',
      addrs: [`/ip4/127.0.0.1/tcp/${p2pPort}`],
      peers: [],
      uploads: 0,
      routingTable: 0,
      lastPeerHitAt: null,
      dataPort,
      dataUnreachable: []
    }
  }
}

describe('diagnose listen: the P2P, data channel and HTTP ports can be bound', () => {
  let held: Server
  let port: number

  before(async () => {
    held = createServer()
    await new Promise<void>(resolve => held.listen({ host: '127.0.0.1', port: 0 }, resolve))
    port = (held.address() as AddressInfo).port
  })

  after(async () => {
    // Resolved on the next turn: finishing the hook inside the close callback left mocha's hook timer counted as open.
    await new Promise(resolve =>
      held.close(() => {
        setImmediate(resolve)
      })
    )
  })

  it('free ports (port 0) are ok; a data channel that follows port 0 takes any free port', async () => {
    const findings = await checkListen([multiaddr('/ip4/127.0.0.1/tcp/0')], { host: '127.0.0.1', port: 0 }, 'auto', undefined)
    assert.deepEqual(findings.map(f => [f.check, f.verdict]), [['listen.p2p', 'ok'], ['listen.data', 'ok'], ['listen.http', 'ok']])
    assert.match(byCheck(findings, 'listen.data').summary, /any free port/)
  })

  it('the data channel off (CACHE_P2P_DATA_PORT=off) is skipped', async () => {
    const findings = await checkListen([multiaddr('/ip4/127.0.0.1/tcp/0')], { host: '127.0.0.1', port: 0 }, 'off', undefined)
    assert.equal(byCheck(findings, 'listen.data').verdict, 'skip')
  })

  it('ports held by another process fail, each fix naming its own variable', async () => {
    const findings = await checkListen([multiaddr(`/ip4/127.0.0.1/tcp/${port}`)], { host: '127.0.0.1', port }, 'off', undefined)
    const p2p = byCheck(findings, 'listen.p2p')
    assert.equal(p2p.verdict, 'fail')
    assert.match(p2p.summary, new RegExp(`can't be bound \\(EADDRINUSE\\)`))
    assert.equal(p2p.fix, 'another process holds the P2P port: stop it, or choose a free port with CACHE_P2P_PORT=9010')
    const http = byCheck(findings, 'listen.http')
    assert.equal(http.verdict, 'fail')
    assert.equal(http.fix, 'another process holds the HTTP port: stop it, or choose a free port with CACHE_HTTP_ADDR=0.0.0.0:9081')
  })

  it('ports held by the running sidecar are fine', async () => {
    const findings = await checkListen([multiaddr(`/ip4/127.0.0.1/tcp/${port}`)], { host: '127.0.0.1', port }, port, live(port, port))
    assert.deepEqual(findings.map(f => f.verdict), ['ok', 'ok', 'ok'])
    assert.match(byCheck(findings, 'listen.p2p').summary, /in use by the running sidecar \(peer 12D3KooWtest\)/)
    assert.match(byCheck(findings, 'listen.data').summary, /in use by the running sidecar/)
  })

  it('a taken data port with auto (P2P port + 1) is a warning: the sidecar falls back to any free port', async () => {
    const findings = await checkListen([multiaddr(`/ip4/127.0.0.1/tcp/${port - 1}`)], { host: '127.0.0.1', port: 0 }, 'auto', undefined)
    const data = byCheck(findings, 'listen.data')
    assert.equal(data.verdict, 'warn')
    assert.match(data.summary, /the P2P port \+ 1\) is taken by another process/)
    assert.match(data.fix ?? '', /set CACHE_P2P_DATA_PORT to a free port/)
  })

  it('a taken explicit data port fails, suggesting CACHE_P2P_DATA_PORT=auto', async () => {
    const findings = await checkListen([multiaddr('/ip4/127.0.0.1/tcp/0')], { host: '127.0.0.1', port: 0 }, port, undefined)
    const data = byCheck(findings, 'listen.data')
    assert.equal(data.verdict, 'fail')
    assert.equal(data.subject, `127.0.0.1:${port}`)
    assert.match(data.fix ?? '', /CACHE_P2P_DATA_PORT=auto/)
  })
})
