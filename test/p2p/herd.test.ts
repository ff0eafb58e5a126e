import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { coordinatorsOf } from '../../src/p2p/claim/distance.js'
import { spawnManaged, type ManagedProcess } from '../fixtures/child.js'
import {
  checkStore,
  findRecords,
  pullThrough,
  saveLogs,
  startHerd,
  waitForMesh,
  type Herd,
  type HerdNode,
  type PullOutcome
} from '../fixtures/herd.js'
import { netnsUnavailable } from '../fixtures/netns.js'
import { buildImage, storedRandomLayer, type ImageDescription, type LayerBlob } from '../fixtures/oci-image.js'
import { freePort } from '../fixtures/ports.js'
import { startRegistry, type Registry, type RegistryRequest } from '../fixtures/registry.js'
import { buildShapedLan, type ShapedLan } from '../fixtures/shaped-lan.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'
import { startThrottleProxy, type ThrottleProxy } from '../fixtures/throttle-proxy.js'
import { waitFor } from '../fixtures/wait.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/**
 * Issue 12: a herd of runners pulling one cold image costs the upstream one copy (swarm-wide
 * single-flight). Real sidecar processes, a real docker-registry upstream, skopeo as the client;
 * on loopback, and on emulated hosts (network namespaces with 200mbit links). Then the herd
 * under failure: the fetching node SIGKILLed mid-download, a key's coordinator SIGKILLed
 * between claim and fetch, and a lying peer inside the herd.
 */

const MiB = 1024 * 1024
/** ≥ 50 MiB in all; the first layer is the "big" one the failure tests aim at. */
const LAYER_SIZES = [40 * MiB, 8 * MiB, 4 * MiB]
const REPO = 'herd/app'
const TAG = 'v1'
/** Per connection, through the throttling proxy: the big layer takes about 4 s upstream. */
const PROXY_RATE = 10 * MiB
const LIAR = resolve(fileURLToPath(import.meta.url), '../../fixtures/liar-peer.ts')

const sorted = (xs: Iterable<string>): string[] => [...xs].sort()
const short = (d: string): string => d.slice(0, 'sha256:'.length + 12)

/** Each pull ended well and its layout holds exactly the image's blobs (each re-hashed). */
function assertVerified (outcomes: PullOutcome[], image: ImageDescription, opts: { maxAttempts?: number } = {}): void {
  const bad = outcomes.filter(o => !o.ok)
  assert.deepEqual(bad.map(o => `${o.node}: ${o.ok ? '' : o.error}`), [], 'every pull succeeds')
  for (const o of outcomes) {
    if (!o.ok) continue
    assert.deepEqual(
      sorted(o.digests),
      sorted(image.allBlobDigests),
      `${o.node}: the pulled layout holds exactly the image's blobs, each verified`
    )
    if (opts.maxAttempts !== undefined) {
      assert.ok(o.attempts <= opts.maxAttempts, `${o.node}: ${o.attempts} attempts (at most ${opts.maxAttempts}): ${o.errors.join(' | ')}`)
    }
  }
}

/**
 * What the upstream's log must show after `pulls` simultaneous pulls by tag: one GET of each
 * blob and of the manifest by digest, at most one HEAD of the tag per pull, and nothing else
 * for blobs or manifests (no GET by tag: Docker Hub counts those).
 */
/** For a failed upstream check: every node's log lines about the digests the problems name (claims, joins, fetches). */
function logsAbout (problems: string[], nodes: HerdNode[]): string {
  const digests = [...new Set(problems.flatMap(p => p.match(/sha256:[a-f0-9]{64}/g) ?? []))]
  if (digests.length === 0) return ''
  const lines = nodes.flatMap(n => n.logs().filter(l => digests.some(d => l.includes(d))).map(l => `${n.name}: ${l.slice(0, 500)}`))
  return `\nthe nodes' log lines about ${digests.join(', ')}:\n${lines.join('\n')}`
}

function upstreamProblems (requests: RegistryRequest[], image: ImageDescription, pulls: number): string[] {
  const problems: string[] = []
  const blobDigests = [image.configDigest, ...image.layers.map(l => l.digest)]
  const expected = new Set([
    ...blobDigests.map(d => `GET /v2/${REPO}/blobs/${d}`),
    `GET /v2/${REPO}/manifests/${image.manifestDigest}`
  ])
  const tagHead = `HEAD /v2/${REPO}/manifests/${TAG}`
  const counts = new Map<string, number>()
  for (const r of requests) {
    const line = `${r.method} ${r.path.split('?')[0] ?? ''}`
    if (!/^\/v2\/.+\/(blobs|manifests)\//.test(r.path)) continue
    counts.set(line, (counts.get(line) ?? 0) + 1)
  }
  for (const line of expected) {
    const n = counts.get(line) ?? 0
    if (n !== 1) problems.push(`${line}: ${n} times, expected once`)
  }
  const heads = counts.get(tagHead) ?? 0
  if (heads > pulls) problems.push(`${tagHead}: ${heads} times, at most one per pull (${pulls})`)
  for (const [line, n] of counts) {
    if (!expected.has(line) && line !== tagHead) problems.push(`${line}: ${n} times, not expected at all`)
  }
  return problems
}

/** The first 'claim won' record for `key` in any of `nodes`' logs. */
function claimWon (nodes: HerdNode[], key: string): { node: HerdNode, coordinator: unknown } | undefined {
  for (const node of nodes) {
    const [rec] = findRecords(node.logs(), 'claim won', { key })
    if (rec !== undefined) return { node, coordinator: rec.coordinator }
  }
  return undefined
}

async function sumStats (nodes: HerdNode[]): Promise<{ sums: Record<string, number>, each: string }> {
  const all = await Promise.all(nodes.map(async n => ({ name: n.name, s: await n.stats() })))
  const sums: Record<string, number> = {}
  for (const { s } of all) {
    for (const [k, v] of Object.entries(s)) if (typeof v === 'number') sums[k] = (sums[k] ?? 0) + v
  }
  const names = [
    'claims_won',
    'claims_joined',
    'peer_inflight_joins',
    'upstream_fetches_saved',
    'upstream_hits',
    'peer_hits',
    'bytes_from_upstream',
    'bytes_from_peers'
  ]
  const each = all.map(({ name, s }) => `${name} ${names.map(k => `${k}=${String(s[k])}`).join(' ')}`).join('\n')
  return { sums, each }
}

/** With HERD_TEST_LOG_DIR set, every node's whole log goes to <dir>/<test title>/ after each test. */
async function keepLogs (ctx: Mocha.Context, herd: Herd | undefined, extra: Record<string, string[]> = {}): Promise<void> {
  const dir = process.env.HERD_TEST_LOG_DIR
  if (dir === undefined || dir === '' || herd === undefined) return
  const title = (ctx.currentTest?.title ?? 'hook').replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)
  await saveLogs(join(dir, title), herd.nodes, extra)
}

async function assertStoresClean (nodes: HerdNode[]): Promise<void> {
  for (const n of nodes) {
    const { files, wrong } = await checkStore(n.env.CACHE_DIR ?? '')
    assert.deepEqual(wrong, [], `${n.name}: every blob file in the store matches its digest (${files.length} files)`)
  }
}

describe('herd: many runners pulling one cold image cost the upstream one copy (issue 12)', function () {
  this.timeout(90_000)
  let work: string
  let layoutDir: string
  let registry: Registry
  let image: ImageDescription
  let big: LayerBlob

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-herd-test-'))
    layoutDir = join(work, 'layout')
    // Random content, gzip level 0: ~0.1 s for 52 MiB instead of ~1.5 s at the default level.
    image = await buildImage(layoutDir, { tag: TAG, layers: 0, baseLayers: LAYER_SIZES.map(size => storedRandomLayer(size)) })
    const first = image.layers[0]
    assert.ok(first !== undefined)
    big = first
    const total = image.layers.reduce((n, l) => n + l.size, 0)
    assert.ok(total >= 50 * MiB, `image is ${total} bytes`)
    registry = await startRegistry()
    await pushLayout(layoutDir, TAG, registry.host, REPO)
  })

  after(async () => {
    try {
      await registry?.destroy()
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })

  describe('five sidecars on loopback pull at the same moment', function () {
    let herd: Herd | undefined
    let outcomes: PullOutcome[] = []

    before(async () => {
      herd = await startHerd({ count: 5, env: { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` } })
      await registry.settled()
      registry.clearRequests()
      outcomes = await Promise.all(herd.nodes.map(async n => await pullThrough(n, REPO, TAG, work, { timeoutMs: 60_000 })))
      await registry.settled()
    })

    afterEach(async function () {
      dumpLogsIfFailed(this, Object.fromEntries((herd?.nodes ?? []).map(n => [n.name, n])))
      await keepLogs(this, herd)
    })

    after(async () => {
      await herd?.destroy()
    })

    it('every pull verifies', () => {
      assert.equal(outcomes.length, 5)
      assertVerified(outcomes, image)
    })

    it('the upstream served each blob and the manifest by digest once; the tag cost one HEAD per pull', () => {
      const problems = upstreamProblems(registry.requests(), image, 5)
      assert.deepEqual(
        problems,
        [],
        `upstream requests:\n${registry.requests().map(r => `${r.method} ${r.path} ${r.status}`).join('\n')}${
          logsAbout(problems, herd?.nodes ?? [])
        }`
      )
    })

    it('the claim counters add up over the herd (GET /api/cache/stats and /metrics)', async () => {
      const nodes = herd?.nodes ?? []
      const names = ['claims_won', 'claims_joined', 'peer_inflight_joins', 'upstream_fetches_saved'] as const
      const { sums, each } = await sumStats(nodes)
      for (const n of nodes) {
        const s = await n.stats()
        for (const k of names) assert.equal(typeof s[k], 'number', `${n.name}: /api/cache/stats has a numeric ${k}`)
        const metrics = await (await fetch(`${n.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text()
        for (const k of names) assert.match(metrics, new RegExp(`^p2p_cache_${k}(_total)? `, 'm'), `${n.name}: /metrics has ${k}`)
      }
      // Five digests (manifest, config, three layers), five nodes: one lease each, the rest joined.
      const digests = image.allBlobDigests.length
      assert.equal(sums.claims_won, digests, `one claim won per digest over the herd:\n${each}`)
      assert.equal(sums.claims_joined, digests * (nodes.length - 1), `every other node joined, for every digest:\n${each}`)
      assert.equal(sums.upstream_fetches_saved, digests * (nodes.length - 1), `each join saved an upstream fetch:\n${each}`)
    })
  })

  describe('six sidecars on emulated hosts bootstrapped to one (network namespaces, links shaped to 100mbit)', function () {
    let lan: ShapedLan | undefined
    let upstream: Registry | undefined
    let herd: Herd | undefined

    before(async function () {
      const why = await netnsUnavailable()
      if (why !== undefined) {
        skipUnlessCi(this, why)
      }
    })

    afterEach(async function () {
      dumpLogsIfFailed(this, Object.fromEntries((herd?.nodes ?? []).map(n => [n.name, n])))
      await keepLogs(this, herd)
    })

    after(async () => {
      await herd?.destroy().catch(() => {})
      await upstream?.destroy().catch(() => {})
      await lan?.destroy()
    })

    it('each pull verifies, the registry (on its own host) served each blob and the manifest once, and nodes still receiving served pieces (issue 23)', async () => {
      lan = await buildShapedLan({ names: ['reg', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6'], subnet: '10.79.0', rate: '100mbit' })
      const [regHost, ...hosts] = lan.hosts
      assert.ok(regHost !== undefined && hosts.length === 6)
      upstream = await startRegistry({ netns: regHost.ns, listenHost: regHost.ip, port: 5000 })
      await pushLayout(layoutDir, TAG, upstream.host, REPO, { netns: regHost.ns.name })
      herd = await startHerd({ hosts, bootstrapToFirst: true, env: { CACHE_REGISTRY_UPSTREAMS: `${upstream.host}=${upstream.url}` } })
      await upstream.settled()
      upstream.clearRequests()

      const outcomes = await Promise.all(herd.nodes.map(async n => await pullThrough(n, REPO, TAG, work, { timeoutMs: 60_000 })))
      assertVerified(outcomes, image)
      await upstream.settled()
      const reqs = upstream.requests()
      const problems = upstreamProblems(reqs, image, hosts.length)
      assert.deepEqual(
        problems,
        [],
        `upstream requests:\n${reqs.map(r => `${r.method} ${r.path} ${r.status}`).join('\n')}${logsAbout(problems, herd.nodes)}`
      )
      // Every blob byte the upstream sent, over the image's blob bytes: one copy (≤ 1.05).
      const stats = await Promise.all(herd.nodes.map(async n => await n.stats()))
      const upstreamBytes = stats.reduce((sum, s) => sum + (s.bytes_from_upstream ?? 0), 0)
      const imageBytes = image.layers.reduce((sum, l) => sum + l.size, 0) + image.manifestSize
      assert.ok(upstreamBytes <= imageBytes * 1.05, `the upstream sent ${upstreamBytes} bytes for an image of ${imageBytes}`)
      const relayed = stats.map((s, k) =>
        `${herd?.nodes[k]?.name ?? k}: ${s.bytes_from_partial_holders ?? 0} bytes from partial holders, ${s.pieces_from_peers ?? 0} pieces`
      )
      assert.ok(
        stats.some(s => (s.bytes_from_partial_holders ?? 0) > 0),
        `a node received pieces from a node that was itself still receiving:\n${relayed.join('\n')}`
      )
    })
  })

  describe('failures inside the herd', function () {
    let herd: Herd | undefined
    let proxy: ThrottleProxy | undefined
    let liar: { proc: ManagedProcess, peerId: string, served: string[], renews: string[], lines: string[] } | undefined

    afterEach(async function () {
      dumpLogsIfFailed(this, Object.fromEntries((herd?.nodes ?? []).map(n => [n.name, n])))
      await keepLogs(this, herd, liar === undefined ? {} : { [`liar-${liar.peerId}`]: liar.lines })
      if (this.currentTest?.state === 'failed' && liar !== undefined) {
        process.stderr.write(`--- liar peer ${liar.peerId} last lines ---\n${liar.lines.slice(-30).join('\n')}\n`)
      }
      const stops = await Promise.allSettled([herd?.destroy(), proxy?.close(), liar?.proc.stop()])
      herd = undefined
      proxy = undefined
      liar = undefined
      for (const r of stops) if (r.status === 'rejected') throw r.reason
    })

    /** Five sidecars whose upstream is the registry behind the throttling proxy. */
    async function throttledHerd (): Promise<Herd> {
      proxy = await startThrottleProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: PROXY_RATE })
      herd = await startHerd({ count: 5, env: { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${proxy.url}` } })
      return herd
    }

    it('the node fetching the big layer is SIGKILLed mid-download: the other four complete, verified', async function () {
      this.timeout(90_000)
      const { nodes } = await throttledHerd()
      const via = proxy as ThrottleProxy
      const pulls = new Map(nodes.map(n => [n.name, pullThrough(n, REPO, TAG, work, { timeoutMs: 60_000 })]))

      const won = await waitFor(() => claimWon(nodes, big.digest), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: `a 'claim won' log line with key ${big.digest}`
      })
      const fetcher = won.node
      await waitFor(() => via.bytesFor(big.digest) >= big.size / 4, {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: `a quarter of the big layer (${big.size} bytes) through the proxy`
      })
      const survivors = nodes.filter(n => n !== fetcher)
      const atKill = via.bytesFor(big.digest)
      await fetcher.kill()
      assert.ok(atKill < big.size, `killed mid-download: ${atKill} of ${big.size} bytes of the big layer had come through the proxy`)

      const outcomes = await Promise.all(survivors.map(async n => await (pulls.get(n.name) as Promise<PullOutcome>)))
      assertVerified(outcomes, image)
      await assertStoresClean(survivors)
      const { sums, each } = await sumStats(survivors)
      assert.ok((sums.peer_inflight_joins ?? 0) >= 1, `the survivors read a download in progress from a peer:\n${each}`)
      // One survivor takes the claim over and resumes upstream; the others read from it. When the
      // fetcher was also the key's coordinator, a claim can reach the next coordinator before the
      // takeover does, and win a second lease there: at most one more, never one per survivor.
      const bigGets = via.requests().filter(r => r.startsWith('GET ') && r.includes(big.digest))
      assert.ok(
        bigGets.length <= 3,
        `the killed fetcher's GET and a takeover (two at most when it also coordinated), not one per survivor (${
          1 + survivors.length
        }): ${bigGets.length} upstream GETs of the big layer`
      )
      await pulls.get(fetcher.name)
    })

    it("the big layer's coordinator is SIGKILLed between claim and fetch: the other four complete, verified", async function () {
      this.timeout(90_000)
      const { nodes } = await throttledHerd()
      const via = proxy as ThrottleProxy
      const [coordinatorId] = coordinatorsOf(big.digest, nodes.map(n => n.peerId))
      const coordinator = nodes.find(n => n.peerId === coordinatorId)
      assert.ok(coordinator !== undefined)
      const pullers = nodes.filter(n => n !== coordinator)
      const pulls = pullers.map(n => pullThrough(n, REPO, TAG, work, { timeoutMs: 60_000 }))

      const won = await waitFor(() => claimWon(pullers, big.digest), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: `a 'claim won' log line with key ${big.digest} on a node other than the coordinator`
      })
      const atKill = via.bytesFor(big.digest)
      await coordinator.kill()
      assert.equal(
        won.coordinator,
        coordinator.peerId,
        `${won.node.name} won the claim from the key's coordinator (closest by XOR) ${coordinator.name}`
      )
      assert.ok(atKill < big.size, `killed before the download finished: ${atKill} of ${big.size} bytes had come through the proxy`)

      assertVerified(await Promise.all(pulls), image)
      await assertStoresClean(pullers)
    })

    it('a lying peer inside the herd: every client has the right image after at most one retry, nothing wrong is stored, the liar is deny-listed', async function () {
      this.timeout(90_000)
      herd = await startHerd({ count: 5, env: { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` } })
      const { nodes } = herd
      const served: string[] = []
      const renews: string[] = []
      const lines: string[] = []
      let peerId = ''
      const proc = spawnManaged(process.execPath, ['--import', 'tsx', LIAR], {
        env: {
          PATH: process.env.PATH,
          LIAR_LISTEN: `/ip4/127.0.0.1/tcp/${await freePort()}`,
          LIAR_BOOTSTRAP: nodes.map(n => n.bootstrapAddr).join(','),
          LIAR_BLOBS: image.layers.map(l => `${l.digest}=${l.size}`).join(','),
          LIAR_HERD: '1'
        },
        onLine: line => {
          lines.push(line)
          const m = /^(READY|SERVED|RENEW) (.+)$/.exec(line)
          if (m?.[1] === 'READY') peerId = m[2] ?? ''
          if (m?.[1] === 'SERVED') served.push(m[2] ?? '')
          if (m?.[1] === 'RENEW') renews.push(m[2] ?? '')
        }
      })
      liar = { proc, peerId: '', served, renews, lines }
      await waitFor(() => {
        if (!proc.isRunning()) throw new Error(`liar peer exited: ${proc.tail(20)}`)
        return peerId !== ''
      }, { timeoutMs: 30_000, what: 'the liar peer announced its blobs' })
      liar.peerId = peerId
      await waitForMesh(nodes, [peerId])

      // The liar holds the lease at each lied-about layer's coordinator (or is the coordinator).
      const everyone = [...nodes.map(n => n.peerId), peerId]
      for (const layer of image.layers) {
        const [coordinator] = coordinatorsOf(layer.digest, everyone)
        if (coordinator === peerId) continue
        const asked = `${layer.digest} ${coordinator ?? ''}`
        await waitFor(() => {
          if (renews.includes(`${asked} fetch`)) return true
          throw new Error(
            `its answers so far: ${renews.filter(r => r.startsWith(asked)).map(r => r.slice(asked.length + 1)).join('; ') || 'none'}`
          )
        }, { timeoutMs: 15_000, what: `the coordinator ${coordinator ?? ''} of ${short(layer.digest)} to grant the liar's renew` })
      }

      const outcomes = await Promise.all(nodes.map(async n => await pullThrough(n, REPO, TAG, work, { retries: 1, timeoutMs: 60_000 })))
      // Checked first: they hold whether or not the clients' retries worked out.
      assert.ok(served.length >= 1, 'the herd read from the liar (not vacuous)')
      await assertStoresClean(nodes)
      const denied = nodes.flatMap(n => findRecords(n.logs(), 'peer deny-listed', { peer: peerId }).filter(r => r.level === 40))
      assert.ok(
        denied.length >= 1,
        `a sidecar logged a 'peer deny-listed' warning naming the liar ${peerId}; it served ${served.map(short).join(', ')}`
      )
      assertVerified(outcomes, image, { maxAttempts: 2 })
    })
  })
})
