import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { OPTIONS } from '../../src/config/options.js'
import { parseAddrList, parseBootstrapAddr } from '../../src/p2p/addresses.js'
import { newSwarmKey } from '../../src/p2p/swarm-key.js'
import { bridge, netnsUnavailable, run, veth, Netns } from '../fixtures/netns.js'
import { CLI } from '../fixtures/sidecar-process.js'
import { buildTopology, H1, startNsSidecar, type NsSidecar, type Topology } from '../fixtures/topology.js'
import { waitFor } from '../fixtures/wait.js'
import { skipUnlessCi } from '../fixtures/skip.js'

const ROOT = new URL('../../', import.meta.url).pathname
const FILE = join(ROOT, 'docker-compose.ci.yml')
const KNOWN_ENV = new Set(Object.values(OPTIONS).map(o => o.env))
const IMAGE = 'p2p-cache'
/** What the image's Dockerfile sets (checked in dockerfile.test.ts). */
const IMAGE_ENV = { CACHE_DIR: '/data', CACHE_HTTP_ADDR: '0.0.0.0:9080' }

interface Service {
  image?: string
  profiles?: string[]
  environment?: Record<string, string | null>
  ports?: Array<string | { published?: number | string, target?: number }>
  network_mode?: string
  command?: string[] | string
  depends_on?: Record<string, { condition: string }>
  volumes?: string[]
}
interface Compose {
  services: Record<string, Service>
}

/** `docker-compose config`: the file as Compose resolves it, with only `vars` in the environment. */
async function composeConfig (vars: Record<string, string> = {}): Promise<Compose> {
  // No inherited environment: a CACHE_* of the test runner must not fill a pass-through variable.
  const res = await run('docker-compose', ['-f', FILE, 'config'], { env: { PATH: process.env.PATH, ...vars } })
  assert.equal(res.code, 0, `docker-compose config failed:\n${res.stderr}`)
  return parse(res.stdout) as Compose
}

const isCache = (s: Service): boolean => s.image === IMAGE
const inProfile = (c: Compose, profile: string): Array<[string, Service]> =>
  Object.entries(c.services).filter(([, s]) => s.profiles?.includes(profile) === true)
/** The environment a sidecar container starts with: the image's, then the service's (set values). */
function containerEnv (s: Service): Record<string, string> {
  const set = Object.entries(s.environment ?? {}).filter((e): e is [string, string] => e[1] !== null)
  return { ...IMAGE_ENV, ...Object.fromEntries(set) }
}
/** The same in a namespace: startNsSidecar's temp dir stands in for the /data volume. */
function nsEnv (s: Service, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { CACHE_DIR: _volume, ...env } = containerEnv(s)
  return { ...env, ...extra }
}

describe('docker-compose.ci.yml', function () {
  this.timeout(60_000)
  let compose: Compose

  before(async () => {
    compose = await composeConfig()
  })

  it('parses with `docker-compose config` when no variable is set', () => {
    assert.ok(Object.keys(compose.services).length > 0)
  })

  it('sets only CACHE_* variables the sidecar knows, with values it accepts', () => {
    const caches = Object.entries(compose.services).filter(([, s]) => isCache(s))
    assert.ok(caches.length >= 3)
    for (const [name, s] of caches) {
      const keys = Object.keys(s.environment ?? {})
      assert.deepEqual(keys.filter(k => !KNOWN_ENV.has(k)), [], `service ${name}: unknown variables`)
      assert.doesNotThrow(() => loadConfig({}, containerEnv(s)), `service ${name}: its values parse`)
    }
  })

  it('documents every pass-through variable in its header, and they parse once set as documented', async () => {
    const header = (await readFile(FILE, 'utf8')).split('\n').filter(l => l.startsWith('#')).join('\n')
    const passThrough = new Set(
      Object.values(compose.services).flatMap(s => Object.entries(s.environment ?? {}).filter(([, v]) => v === null).map(([k]) => k))
    )
    for (const k of passThrough) assert.match(header, new RegExp(`^#\\s+${k}\\s`, 'm'), `${k} is explained in the header`)
    const set = await composeConfig({
      CACHE_SWARM_KEY: newSwarmKey(),
      CACHE_ANNOUNCE_ADDRS: '/ip4/10.0.0.12/tcp/9000',
      CACHE_BOOTSTRAP_PEERS: '/ip4/10.0.0.11/tcp/9000/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA',
      RUNNER_URL: 'https://github.com/example-org',
      RUNNER_TOKEN: 'not-a-real-token'
    })
    for (const [name, s] of Object.entries(set.services).filter(([, s]) => isCache(s))) {
      assert.deepEqual(Object.entries(s.environment ?? {}).filter(([, v]) => v === null), [], `service ${name}: every variable filled`)
      assert.doesNotThrow(() => loadConfig({}, containerEnv(s)), `service ${name}`)
    }
  })

  it('has the three shapes, each with runners pointed at their sidecar (mirror and API base URL)', () => {
    for (const profile of ['host', 'bridge', 'pairs']) {
      const services = inProfile(compose, profile)
      const caches = new Map(services.filter(([, s]) => isCache(s)))
      const runners = services.filter(([, s]) => s.environment?.P2P_CACHE_URL !== undefined)
      assert.ok(caches.size > 0 && runners.length === caches.size, `profile ${profile}: one runner per sidecar`)
      for (const [name, runner] of runners) {
        const url = new URL(runner.environment?.P2P_CACHE_URL ?? '')
        const [cacheName, cache] = [...caches].find(([n, c]) =>
          n === url.hostname ||
          (runner.network_mode === 'host' && c.network_mode === 'host' &&
            loadConfig({}, containerEnv(c)).httpAddr.port === Number(url.port))
        ) ?? []
        assert.ok(cache !== undefined && cacheName !== undefined, `${name}: P2P_CACHE_URL ${url.href} is a sidecar of profile ${profile}`)
        assert.equal(Number(url.port), loadConfig({}, containerEnv(cache)).httpAddr.port, `${name}: the sidecar's HTTP port`)
        assert.equal(
          runner.environment?.P2P_CACHE_HOST,
          url.host,
          `${name}: P2P_CACHE_HOST is P2P_CACHE_URL's host (a registry host for skopeo/crane)`
        )
        assert.equal(runner.depends_on?.[cacheName]?.condition, 'service_healthy', `${name} waits for its sidecar's health check`)
        const dockerHost = runner.environment?.DOCKER_HOST
        if (runner.network_mode === 'host') {
          // The host's daemon, whose daemon.json names the mirror (examples/docker/daemon.json).
          assert.ok(runner.volumes?.some(v => v.startsWith('/var/run/docker.sock:')), `${name} uses the host's Docker daemon`)
        } else {
          assert.ok(dockerHost !== undefined, `${name} has a Docker daemon`)
          const daemon = compose.services[new URL(dockerHost ?? '').hostname]
          const args = Array.isArray(daemon?.command) ? daemon.command : []
          assert.ok(
            args.includes(`--registry-mirror=${url.origin}`),
            `${name}'s Docker daemon mirrors through ${url.origin}: ${args.join(' ')}`
          )
        }
      }
    }
  })

  it('host shape: sidecar and runner on the host network, HTTP on loopback only', () => {
    for (const [name, s] of inProfile(compose, 'host')) assert.equal(s.network_mode, 'host', name)
    const [, cache] = inProfile(compose, 'host').find(([, s]) => isCache(s)) ?? []
    assert.ok(cache !== undefined)
    assert.equal(loadConfig({}, containerEnv(cache)).httpAddr.host, '127.0.0.1')
  })

  it('bridge shape: the P2P port published under the same number, the announce address left to the host', () => {
    const [, cache] = inProfile(compose, 'bridge').find(([, s]) => isCache(s)) ?? []
    assert.ok(cache !== undefined)
    const p2p = (cache.ports ?? []).map(p => typeof p === 'string' ? p : `${p.published ?? ''}:${p.target ?? ''}`)
    assert.ok(p2p.includes('9000:9000'), `ports ${JSON.stringify(cache.ports)}`)
    assert.ok(Object.hasOwn(cache.environment ?? {}, 'CACHE_ANNOUNCE_ADDRS'), 'CACHE_ANNOUNCE_ADDRS passes through')
    assert.ok(cache.volumes?.some(v => v.endsWith(':/data') || v.includes(':/data:')), 'the data dir (and identity) on a volume')
  })

  it('pairs shape: every sidecar bootstraps through the same list of service names, its own included', () => {
    const caches = inProfile(compose, 'pairs').filter(([, s]) => isCache(s))
    assert.ok(caches.length >= 2)
    const names = caches.map(([n]) => n).sort()
    for (const [name, s] of caches) {
      const list = parseAddrList(s.environment?.CACHE_BOOTSTRAP_PEERS ?? '', parseBootstrapAddr)
      assert.deepEqual(list.map(ma => ma.getComponents()[0]?.value).sort(), names, `${name} lists every pair's sidecar`)
      assert.ok(
        list.every(ma => ma.getComponents()[0]?.name === 'dns4' && ma.getComponents()[1]?.value === '9000'),
        `${name}: /dns4/<service>/tcp/9000`
      )
    }
    const volumes = caches.map(([, s]) => s.volumes?.[0]?.split(':')[0])
    assert.equal(new Set(volumes).size, caches.length, 'each sidecar has its own data volume')
  })

  // The shapes on emulated hosts: namespaces stand in for containers and hosts, /etc/netns hosts
  // files for Compose's DNS. The sidecars start with the environment Compose would give them.
  describe('on emulated hosts (network namespaces)', function () {
    this.timeout(120_000)
    const cleanup: Array<() => Promise<void>> = []

    before(async function () {
      const why = await netnsUnavailable()
      if (why !== undefined) {
        skipUnlessCi(this, why)
      }
    })

    after(async () => {
      for (const c of cleanup.reverse()) await c().catch(() => {})
    })

    async function statsIn (ns: Netns, env: NodeJS.ProcessEnv): Promise<{ peers_connected: number }> {
      const res = await ns.run(process.execPath, [CLI, 'stats', '--json'], { env: { PATH: process.env.PATH, ...env } })
      if (res.code !== 0) throw new Error(`stats in ${ns.name}: ${res.stderr}`)
      return JSON.parse(res.stdout) as { peers_connected: number }
    }

    async function waitPeers (ns: Netns, env: NodeJS.ProcessEnv, n: number): Promise<void> {
      await waitFor(async () => (await statsIn(ns, env)).peers_connected >= n, {
        timeoutMs: 20_000,
        intervalMs: 300,
        what: `${n} peers in ${ns.name}`
      })
    }

    it('pairs: three sidecars on one network find each other by service name; the health check passes', async () => {
      const caches = inProfile(compose, 'pairs').filter(([, s]) => isCache(s))
      const lan = await Netns.create('p2pc-net')
      cleanup.push(async () => {
        await lan.destroy()
      })
      const hosts = caches.map(([name], i) => ({ name, ip: `10.78.0.${11 + i}` }))
      const hostsFile = `127.0.0.1 localhost\n${hosts.map(h => `${h.ip} ${h.name}`).join('\n')}\n`
      const members: Array<{ ns: Netns, name: string, service: Service }> = []
      for (const [i, [name, service]] of caches.entries()) {
        const ns = await Netns.create(`p2pc-c${i + 1}`)
        cleanup.push(async () => {
          await ns.destroy()
        })
        await veth(lan, `p${i + 1}`, undefined, ns, 'eth0', `${hosts[i]?.ip ?? ''}/24`)
        await ns.etc('hosts', hostsFile)
        await ns.etc('resolv.conf', 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
        members.push({ ns, name, service })
      }
      await bridge(lan, 'br0', undefined, caches.map((_, i) => `p${i + 1}`))
      const started: Array<{ ns: Netns, name: string, sidecar: NsSidecar, env: NodeJS.ProcessEnv }> = []
      for (const { ns, name, service } of members) {
        const env = nsEnv(service)
        const sidecar = await startNsSidecar(ns, env)
        cleanup.push(async () => {
          await sidecar.stop()
        })
        started.push({ ns, name, sidecar, env })
      }
      for (const { ns, env } of started) await waitPeers(ns, env, caches.length - 1)
      for (const { ns, name, env, sidecar } of started) {
        // What the image's HEALTHCHECK runs.
        const health = await ns.run(process.execPath, [CLI, 'healthcheck'], { env: { PATH: process.env.PATH, ...env } })
        assert.equal(health.code, 0, health.stderr)
        assert.ok(
          !sidecar.logs.some(l => l.includes('bootstrap peer unreachable') && l.includes(`/dns4/${name}/`)),
          `${name} skips its own name quietly`
        )
      }
    })

    it('host + bridge: a host-networked sidecar joins a bridged one through its published port and announced host IP', async () => {
      const [, bridged] = inProfile(compose, 'bridge').find(([, s]) => isCache(s)) ?? []
      const [, hosted] = inProfile(compose, 'host').find(([, s]) => isCache(s)) ?? []
      assert.ok(bridged !== undefined && hosted !== undefined)
      const topo: Topology = await buildTopology()
      cleanup.push(async () => {
        await topo.destroy()
      })
      // As the header says: publish 9000 and announce the host's IP.
      await topo.publish(9000)
      const cEnv = nsEnv(bridged, { CACHE_ANNOUNCE_ADDRS: `/ip4/${H1}/tcp/9000` })
      const c = await startNsSidecar(topo.c1, cEnv)
      cleanup.push(async () => {
        await c.stop()
      })
      const hEnv = nsEnv(hosted, { CACHE_BOOTSTRAP_PEERS: `/ip4/${H1}/tcp/9000` })
      const h = await startNsSidecar(topo.h2, hEnv)
      cleanup.push(async () => {
        await h.stop()
      })
      await waitPeers(topo.h2, hEnv, 1)
      await waitPeers(topo.c1, cEnv, 1)
      assert.ok(
        h.logs.some(l => l.includes('connected to the node that answered') && l.includes(c.peerId)),
        "h2 learned the bridged sidecar's ID from the handshake"
      )
    })
  })
})
