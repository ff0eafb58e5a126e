import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ManagedProcess } from '../fixtures/child.js'
import { bridge, Netns, netnsUnavailable, veth } from '../fixtures/netns.js'
import { freePort } from '../fixtures/ports.js'
import { CLI, cliNodeFlags, runCli } from '../fixtures/sidecar-process.js'
import { PEER_ID_RE, warnLines } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'
import { dockerClientCheck, dockerClientMissing, parseEnvFile, readExample } from './example-files.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/** A CACHE_BOOTSTRAP_PEERS entry of the example: a seed's IP, port and the placeholder for its ID. */
interface Seed {
  entry: string
  ip: string
  port: number
  placeholder: string
}

function seedsOf (bootstrap: string): Seed[] {
  return bootstrap.split(',').map(entry => {
    const m = /^\/ip4\/([\d.]+)\/tcp\/(\d+)\/p2p\/(\S+)$/.exec(entry)
    if (m === null) throw new Error(`unexpected bootstrap entry ${entry}`)
    return { entry, ip: m[1] as string, port: Number(m[2]), placeholder: m[3] as string }
  })
}

/** Where the sidecar's data goes and what it may reach here: its own dir, upstreams on loopback only. */
const localOverrides = (dir: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: dir,
  CACHE_DIR: join(dir, 'data'),
  CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
  CACHE_API_UPSTREAMS: 'github=http://127.0.0.1:1'
})

describe('examples/fleet: one env file for every host', function () {
  this.timeout(120_000)
  let fileEnv: Record<string, string>
  let seeds: Seed[]

  before(async () => {
    fileEnv = parseEnvFile(await readExample('fleet', 'p2p-cache.env'))
    seeds = seedsOf(fileEnv.CACHE_BOOTSTRAP_PEERS ?? '')
  })

  it('lists two or three seeds on the default P2P port, keeps HTTP on loopback, and /data for the volume', () => {
    assert.ok(seeds.length >= 2 && seeds.length <= 3, fileEnv.CACHE_BOOTSTRAP_PEERS)
    for (const s of seeds) assert.equal(s.port, 9000)
    assert.equal(fileEnv.CACHE_HTTP_ADDR, '127.0.0.1:9080')
    assert.equal(fileEnv.CACHE_DIR, '/data')
  })

  it('as shipped, with its placeholders, stops the sidecar at start-up (exit 2) naming what to fill in', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-fleet-'))
    try {
      // Own ports, in case a fix let it start: it must never bind the real 9000/9080 here.
      const r = await runCli(
        ['serve'],
        {
          ...fileEnv,
          ...localOverrides(dir),
          CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
          CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${await freePort()}`
        },
        { timeoutMs: 20_000 }
      )
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /^p2p-cache: invalid CACHE_(BOOTSTRAP_PEERS|SWARM_KEY)/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  /**
   * The real thing in network namespaces: a LAN (a bridge) with the seed hosts at the addresses
   * the file lists and one more host, each running the sidecar from the file with only its
   * CACHE_DIR (and its upstreams) changed. The seeds' IDs come from `p2p-cache id` on each seed,
   * the key from `p2p-cache swarm-key`, as the fleet README says.
   */
  describe('on a LAN of three hosts (network namespaces): the two seeds and one more', function () {
    const namespaces: Netns[] = []
    const dirs: string[] = []
    const procs: ManagedProcess[] = []
    const hosts: Array<{ ns: Netns, ip: string, peerId: string, logs: string[] }> = []
    let filled = ''

    before(async function () {
      const why = await netnsUnavailable()
      if (why !== undefined) {
        skipUnlessCi(this, `${why} (the fleet runs on hosts emulated by network namespaces)`)
      }
      const lan = await Netns.create('p2pc-fleet-lan')
      namespaces.push(lan)
      const ips = [...seeds.map(s => s.ip), '10.0.0.13']
      assert.ok(!seeds.some(s => s.ip === '10.0.0.13'))
      for (const [i, ip] of ips.entries()) {
        const ns = await Netns.create(`p2pc-fleet-h${i + 1}`)
        namespaces.push(ns)
        await veth(lan, `p${i + 1}`, undefined, ns, 'eth0', `${ip}/24`)
        // Names resolve from files only: no lookup leaves the namespace.
        await ns.etc('hosts', '127.0.0.1 localhost\n')
        await ns.etc('resolv.conf', 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
        const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-fleet-'))
        dirs.push(dir)
        hosts.push({ ns, ip, peerId: '', logs: [] })
      }
      await bridge(lan, 'br0', undefined, ips.map((_ip, i) => `p${i + 1}`))
      // A host's network is up (network-online.target) before the sidecar starts: until the link
      // is running, the interface's address is not listed (so `id` would not print it).
      for (const host of hosts) {
        await waitFor(async () => / state UP /.test(await host.ns.must('ip', ['-o', 'link', 'show', 'eth0'])), {
          timeoutMs: 10_000,
          intervalMs: 50,
          what: `eth0 running on ${host.ip}`
        })
      }

      // Step 1: `p2p-cache id` on each seed (before the file exists: CACHE_DIR only) prints the
      // line to paste into the file.
      let text = await readExample('fleet', 'p2p-cache.env')
      for (const [i, seed] of seeds.entries()) {
        const host = hosts[i]
        assert.ok(host !== undefined)
        const r = await host.ns.run(process.execPath, [CLI, 'id'], { env: localOverrides(dirs[i] as string), timeoutMs: 30_000 })
        assert.equal(r.code, 0, r.stderr)
        const [peerId, ...addrs] = r.stdout.trim().split('\n')
        assert.match(peerId ?? '', PEER_ID_RE)
        host.peerId = peerId as string
        const line = seed.entry.replace(seed.placeholder, host.peerId)
        assert.ok(addrs.includes(line), `p2p-cache id on ${seed.ip} prints ${line}: ${addrs.join(' ')}`)
        text = text.replace(seed.placeholder, host.peerId)
      }
      // Step 2: the swarm key.
      const key = await runCli(['swarm-key'])
      assert.equal(key.code, 0)
      assert.ok(text.includes(fileEnv.CACHE_SWARM_KEY ?? '-'))
      filled = text.replace(fileEnv.CACHE_SWARM_KEY ?? '', key.stdout.trim())

      // Step 3: the same file on every host.
      const env = parseEnvFile(filled)
      for (const [i, host] of hosts.entries()) {
        procs.push(
          host.ns.spawn(process.execPath, [...cliNodeFlags(), CLI, 'serve'], {
            env: { ...env, ...localOverrides(dirs[i] as string) },
            onLine: line => {
              host.logs.push(line)
            }
          })
        )
      }
      await Promise.all(hosts.map(async (host, i) => {
        await waitFor(async () => {
          if (procs[i]?.isRunning() !== true) throw new Error(`sidecar on ${host.ip} exited: ${procs[i]?.tail(20) ?? ''}`)
          return (await p2p(host.ns)) !== undefined
        }, { timeoutMs: 30_000, intervalMs: 200, what: `the sidecar on ${host.ip} to be ready at the file's CACHE_HTTP_ADDR` })
      }))
      const third = hosts[2]
      if (third !== undefined) third.peerId = (await p2p(third.ns))?.peerId ?? ''
      assert.match(third?.peerId ?? '', PEER_ID_RE)
    })

    after(async () => {
      await Promise.allSettled(procs.map(async p => {
        await p.stop()
      }))
      for (const ns of namespaces.reverse()) await ns.destroy()
      await Promise.all(dirs.map(async d => {
        await rm(d, { recursive: true, force: true })
      }))
    })

    /** GET /api/p2p on the host's own loopback, at the address the file gives (127.0.0.1:9080). */
    async function p2p (ns: Netns): Promise<{ peerId: string, peers: Array<{ peerId: string }> } | undefined> {
      const r = await ns.run('curl', ['-fsS', '--max-time', '2', `http://${fileEnv.CACHE_HTTP_ADDR ?? ''}/api/p2p`], { timeoutMs: 5_000 })
      return r.code === 0 ? JSON.parse(r.stdout) as { peerId: string, peers: Array<{ peerId: string }> } : undefined
    }

    it('the filled-in file is one docker accepts as an --env-file', async function () {
      const why = await dockerClientMissing()
      if (why !== undefined) {
        skipUnlessCi(this, why)
      }
      const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-fleet-'))
      try {
        await writeFile(join(dir, 'p2p-cache.env'), filled)
        const { accepted, stderr } = await dockerClientCheck(
          `docker run --rm --network host -v p2p-cache:/data --env-file ${join(dir, 'p2p-cache.env')} p2p-cache`
        )
        assert.ok(accepted, stderr)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })

    it('every host connects to the other two: the seeds to each other, the third host to both', async () => {
      for (const host of hosts) {
        const others = hosts.filter(h => h !== host).map(h => h.peerId).sort()
        await waitFor(async () => {
          const peers = new Set((await p2p(host.ns))?.peers.map(p => p.peerId))
          return others.every(id => peers.has(id))
        }, { timeoutMs: 30_000, intervalMs: 200, what: `${host.ip} connected to ${others.join(', ')}` })
      }
    })

    it('a seed skips its own entry: no warning about it; no host warns about bootstrapping', () => {
      for (const [i, host] of hosts.entries()) {
        const warnings = warnLines(host.logs)
        if (i < seeds.length) assert.deepEqual(warnings.filter(w => w.includes(host.peerId)), [], `${host.ip} warned about its own entry`)
        assert.deepEqual(warnings.filter(w => /bootstrap/i.test(w)), [], `${host.ip}: bootstrap warnings`)
      }
    })
  })
})
