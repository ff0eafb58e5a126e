import assert from 'node:assert/strict'
import { classifyNetwork, environmentFindings, type InterfaceAddr, type NetworkFacts } from '../../../src/diagnose/environment.js'

const lo: InterfaceAddr = { name: 'lo', address: '127.0.0.1', cidr: '127.0.0.1/8', family: 'IPv4' }

function iface (name: string, cidr: string): InterfaceAddr {
  return { name, address: cidr.split('/')[0] ?? '', cidr, family: cidr.includes(':') ? 'IPv6' : 'IPv4' }
}

function facts (over: Partial<Omit<NetworkFacts, 'mode' | 'reason'>>): NetworkFacts {
  const base = { container: [], interfaces: [lo], bridges: [], defaultGateway: undefined, defaultInterface: undefined, ...over }
  return { ...base, ...classifyNetwork(base) }
}

describe('diagnose environment: host or bridge network', () => {
  it("a container routed through Docker's default bridge (172.17.x) is on a bridge network", () => {
    const f = facts({
      container: ['/.dockerenv exists'],
      interfaces: [lo, iface('eth0', '172.17.0.2/16')],
      defaultGateway: '172.17.0.1',
      defaultInterface: 'eth0'
    })
    assert.equal(f.mode, 'bridge')
    assert.match(f.reason, /via 172\.17\.0\.1 on eth0 \(172\.17\.0\.2\/16\)/)
  })

  it('a user-defined network (172.18.x) counts as a bridge only with container evidence', () => {
    const net = { interfaces: [lo, iface('eth0', '172.18.0.3/16')], defaultGateway: '172.18.0.1', defaultInterface: 'eth0' }
    assert.equal(facts({ ...net, container: ['/proc/1/cgroup names docker'] }).mode, 'bridge')
    assert.equal(facts(net).mode, 'host')
  })

  it('a LAN on 192.168.x without container evidence is the host network', () => {
    const f = facts({ interfaces: [lo, iface('enp3s0', '192.168.1.20/24')], defaultGateway: '192.168.1.1', defaultInterface: 'enp3s0' })
    assert.equal(f.mode, 'host')
    assert.match(f.reason, /no container evidence; the default route goes via 192\.168\.1\.1 on enp3s0/)
  })

  it("visible bridge devices mean the host's own network stack, even in a container", () => {
    const f = facts({
      container: ['/.dockerenv exists'],
      bridges: ['docker0'],
      interfaces: [lo, iface('docker0', '172.17.0.1/16')],
      defaultGateway: '172.17.0.1',
      defaultInterface: 'docker0'
    })
    assert.equal(f.mode, 'host')
    assert.match(f.reason, /bridge devices are visible \(docker0\)/)
  })

  it('a container with only loopback has no network: a warning saying to give it one', () => {
    const f = facts({ container: ['/.dockerenv exists'] })
    assert.equal(f.mode, 'unknown')
    const [, network] = environmentFindings(f)
    assert.equal(network?.verdict, 'warn')
    assert.match(network?.summary ?? '', /--network none\?/)
    assert.match(network?.fix ?? '', /--network host.*-p 9000:9000/)
  })

  it('a bridge network is reported as a fact, pointing at CACHE_ANNOUNCE_ADDRS; a host network lists its addresses', () => {
    const bridge = environmentFindings(
      facts({
        container: ['/.dockerenv exists'],
        interfaces: [lo, iface('eth0', '172.17.0.2/16')],
        defaultGateway: '172.17.0.1',
        defaultInterface: 'eth0'
      })
    )
    assert.deepEqual(bridge.map(f => f.verdict), ['ok', 'ok'])
    assert.match(bridge[0]?.summary ?? '', /^in a container \(\/\.dockerenv exists\)/)
    assert.match(bridge[1]?.summary ?? '', /published port and CACHE_ANNOUNCE_ADDRS/)
    const host = environmentFindings(facts({ interfaces: [lo, iface('eth0', '10.0.0.5/24'), iface('eth0', 'fe80::1/64')] }))
    assert.match(host[0]?.summary ?? '', /^not in a container/)
    assert.match(host[1]?.summary ?? '', /addresses eth0 10\.0\.0\.5\/24$/, 'loopback and link-local are left out')
  })
})
