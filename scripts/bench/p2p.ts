/**
 * The peer-to-peer rows of `npm run bench` (docs/design.md §6):
 *
 *   5. peer transfer throughput of a large blob between two sidecars A → B, the client of B
 *      hashing (digest verified), as a ratio to the plain node:http file server serving the same
 *      bytes over loopback in the same run; peak RSS of A (serving) and B (fetching) meanwhile;
 *   6. time to first byte of a peer hit on a swarm of 20 sidecars (p50, p95), against the TTFB
 *      of a local hit on the same nodes; and the TTFB of a miss that goes upstream on the swarm
 *      (its DHT lookup finds nobody) against the same GET straight from the registry; docs/design.md §6
 *      wants such a miss decided in < 30 ms, so its p50 has that target.
 *
 * Only X-Cache: PEER answers count as peer figures; any other answer (an upstream MISS after a
 * failed lookup, say) is counted and reported, never mixed in. Every node is its own
 * `node dist/cli/main.js serve` process listening on loopback only.
 */
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Registry } from '../../test/fixtures/registry.js'
import { waitFor } from '../../test/fixtures/wait.js'
import { withSectionCleanup } from './cleanup.js'
import { randomBlobFile, gcDelta, sidecarGc, sleep, spread, type BlobFile, type GcCounts, type SectionCtx } from './common.js'
import { fetchBlob, requestJson, uploadBlob, type FetchResult } from './http-client.js'
import { startP2pNode, startP2pNodes, type P2pNode } from './p2p-node.js'
import { cpuSeconds, memory, peakRssDuring, startFileServer } from './proc.js'
import { median, MB, MiB, percentile, ratioOf } from './report.js'

export interface P2pConfig {
  /** Row 5: blob moved A → B, and the number of timed runs (each paired with a baseline run). */
  pairBytes: number
  pairRuns: number
  /** Row 6. */
  swarmNodes: number
  swarmStartBatch: number
  swarmBlobs: number
  swarmBlobBytes: number
  /** Nodes (other than the seeding one) that GET each swarm blob: the peer-hit samples. */
  swarmRequestersPerBlob: number
  requestTimeoutMs: number
}

export function p2pConfig (quick: boolean, requestTimeoutMs: number): P2pConfig {
  return {
    pairBytes: (quick ? 64 : 256) * MiB,
    pairRuns: quick ? 5 : 7,
    swarmNodes: Number(process.env.BENCH_SWARM_NODES ?? '20'),
    swarmStartBatch: 4,
    swarmBlobs: quick ? 10 : 20,
    swarmBlobBytes: 64 * 1024,
    swarmRequestersPerBlob: 3,
    requestTimeoutMs
  }
}

export interface P2pCtx extends SectionCtx {
  registry: Registry
}

const REPO = 'bench/p2p'

/**
 * BENCH_P2P_SWARM_KEY=1 runs every P2P node with one random CACHE_SWARM_KEY (a private swarm:
 * pnet's extra stream cipher under Noise), to measure its cost; default: no key.
 */
// Info level: the 'claim won' lines carry how long deciding a miss took (claimMs).
const NODE_ENV: NodeJS.ProcessEnv = {
  CACHE_LOG_LEVEL: 'info',
  ...(process.env.BENCH_P2P_SWARM_KEY === '1' ? { CACHE_SWARM_KEY: randomBytes(32).toString('hex') } : {})
}
const KEY_LABEL = NODE_ENV.CACHE_SWARM_KEY === undefined ? '' : ', swarm key'

function header (r: FetchResult, name: string): string | undefined {
  const v = r.headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

export function tally (counts: Record<string, number>): string {
  return Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
}

/** Nodes' warnings (log level >= warn), deduplicated by message, for the log and results. */
function warningSummary (nodes: P2pNode[]): string[] {
  return summarizeWarnings(nodes.flatMap(node => node.warnings()))
}

/** Pino log lines deduplicated by message (and error), each with its count. */
export function summarizeWarnings (lines: string[]): string[] {
  const byMsg = new Map<string, number>()
  for (const line of lines) {
    let msg = line
    try {
      const o = JSON.parse(line) as Record<string, unknown>
      msg = `${String(o['msg'])}${o['err'] !== undefined ? `: ${JSON.stringify(o['err']).slice(0, 200)}` : ''}`
    } catch { /* not JSON: keep the line */ }
    byMsg.set(msg, (byMsg.get(msg) ?? 0) + 1)
  }
  return [...byMsg].map(([msg, n]) => `${n}x ${msg}`)
}

// ---------------------------------------------------------------------------------------
// 5. Peer transfer of a large blob, A → B
// ---------------------------------------------------------------------------------------

export async function p2pThroughput (ctx: P2pCtx, cfg: P2pConfig): Promise<void> {
  await withSectionCleanup(ctx, 'P2P pair', async local => {
    const { work, registry, rows, log } = ctx
    const sizeLabel = `${cfg.pairBytes / MiB} MiB`
    log(`P2P transfer: writing a ${sizeLabel} random blob and pushing it to the registry`)
    const blob = await randomBlobFile(work, 'p2p-large.bin', cfg.pairBytes)
    local.add('P2P blob file', () => rm(blob.path, { force: true }))
    await uploadBlob(registry.url, REPO, blob.path, blob.size, blob.digest, cfg.requestTimeoutMs)

    const root = join(work, 'p2p-pair')
    const upstreams = `${registry.host}=${registry.url}`
    const a = await startP2pNode({
      root,
      name: 'A',
      upstreams,
      bootstrap: [],
      env: NODE_ENV,
      nodeArgs: process.env.BENCH_PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir=/tmp/prof/a']
    })
    local.add('P2P node A', a.stop)
    const b = await startP2pNode({
      root,
      name: 'B',
      upstreams,
      bootstrap: [a.dialAddr],
      env: NODE_ENV,
      nodeArgs: process.env.BENCH_PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir=/tmp/prof/b']
    })
    local.add('P2P node B', b.stop)
    const t = performance.now()
    await waitFor(async () => (await b.info()).peers.some(p => p.peerId === a.peerId), {
      timeoutMs: 15_000,
      intervalMs: 20,
      what: `B (${b.peerId}) connected to A (${a.peerId})`
    })
    log(
      `P2P transfer: A ${a.peerId} ready in ${a.startMs.toFixed(0)} ms, B ready in ${b.startMs.toFixed(0)} ms, B connected to A ${
        (performance.now() - t).toFixed(0)
      } ms later`
    )

    const fileServer = await startFileServer(blob.path)
    local.add('P2P file server', fileServer.stop)
    const path = `/v2/${REPO}/blobs/${blob.digest}`
    const opts = { hash: true, expectDigest: blob.digest, timeoutMs: cfg.requestTimeoutMs }

    // A fetches the blob from the registry, commits it and then provides it on the DHT.
    const seed = await fetchBlob(`${a.url}${path}`, opts)
    log(`P2P transfer: A fetched the blob from upstream (X-Cache: ${header(seed, 'x-cache') ?? '-'}) in ${(seed.ms / 1000).toFixed(2)} s`)
    await sleep(300)

    const gets = async (): Promise<number> => {
      await registry.settled()
      return registry.count({ method: 'GET', pathIncludes: `/blobs/${blob.digest}` })
    }
    interface PeerRun {
      r: FetchResult
      upstreamGets: number
      removed: unknown
      commitWaitMs: number
    }
    /**
     * Clears B's store, then one GET through B; the caller judges the answer. A peer hit's bytes
     * reach the client once verified, before B commits the blob: the run ends when B's `stores`
     * counter moved, or a DELETE right after would race the commit and leave the blob in place.
     */
    const peerRun = async (): Promise<PeerRun> => {
      const cleared = await requestJson('DELETE', `${b.url}/api/cache`) as Record<string, unknown> | undefined
      await sleep(100)
      const before = await gets()
      const stores = (await b.stats())['stores'] ?? 0
      const r = await fetchBlob(`${b.url}${path}`, opts)
      const t = performance.now()
      await waitFor(async () => ((await b.stats())['stores'] ?? 0) > stores, {
        timeoutMs: 30_000,
        intervalMs: 10,
        what: 'B to commit the blob'
      })
      return { r, upstreamGets: (await gets()) - before, removed: cleared?.['removed'], commitWaitMs: performance.now() - t }
    }
    const isPeerHit = (run: PeerRun): boolean => header(run.r, 'x-cache') === 'PEER' && run.upstreamGets === 0
    const describe = (run: PeerRun): string =>
      `X-Cache ${header(run.r, 'x-cache') ?? '-'} from ${header(run.r, 'x-cache-source') ?? '-'}, ${run.upstreamGets} upstream GETs`

    // Untimed round: B's first lookup, connection warm-up, JIT, page cache. The provide may
    // still be under way: a few attempts.
    let warm: PeerRun | undefined
    for (let attempt = 1; attempt <= 4; attempt++) {
      warm = await peerRun()
      log(`P2P transfer: warm-up ${attempt}: ${describe(warm)}, ${(warm.r.bytes / MB / (warm.r.ms / 1000)).toFixed(0)} MB/s`)
      if (isPeerHit(warm)) break
      await sleep(1_000)
    }
    await fetchBlob(`${fileServer.url}/p2p-large.bin`, opts)

    const peer: number[] = []
    const base: number[] = []
    const peerPhaseMs: number[] = []
    const bodyMs: number[] = []
    /** After the response ended, until B's commit: fsync and index, not seen by the client. */
    const commitWaitMs: number[] = []
    const sources: Record<string, number> = {}
    const rejected: string[] = []
    /** What each DELETE /api/cache on B removed: B's previous copy, committed after a peer hit. */
    const removed: unknown[] = []
    let peakA = 0
    let peakB = 0
    let peakFs = 0
    const rssBefore = { a: memory(a.pid).rss, b: memory(b.pid).rss, fs: memory(fileServer.pid).rss }
    let hwmUsed = true
    const cpu = { a: 0, b: 0, fs: 0, peerBytes: 0, baseBytes: 0 }
    const statsA0 = await a.stats()
    const statsB0 = await b.stats()
    const gcA0 = await sidecarGc(a.url)
    const gcB0 = await sidecarGc(b.url)

    const timedPeer = async (): Promise<void> => {
      const cpuA = cpuSeconds(a.pid)
      const cpuB = cpuSeconds(b.pid)
      const outer = await peakRssDuring(a.pid, () => peakRssDuring(b.pid, peerRun, 10), 10)
      cpu.a += cpuSeconds(a.pid) - cpuA
      cpu.b += cpuSeconds(b.pid) - cpuB
      const run = outer.result.result
      removed.push(run.removed)
      hwmUsed &&= outer.hwmUsed && outer.result.hwmUsed
      if (!isPeerHit(run)) {
        rejected.push(describe(run))
        return
      }
      cpu.peerBytes += run.r.bytes
      peakA = Math.max(peakA, outer.peak)
      peakB = Math.max(peakB, outer.result.peak)
      peer.push(run.r.bytes / MB / (run.r.ms / 1000))
      peerPhaseMs.push(run.r.firstByteMs)
      commitWaitMs.push(run.commitWaitMs)
      bodyMs.push(run.r.ms - run.r.firstByteMs)
      const src = header(run.r, 'x-cache-source') ?? '-'
      const who = src === a.peerId ? 'A' : src === b.peerId ? 'B itself' : src
      sources[who] = (sources[who] ?? 0) + 1
    }
    const timedBase = async (): Promise<void> => {
      const c = cpuSeconds(fileServer.pid)
      const r = await peakRssDuring(fileServer.pid, () => fetchBlob(`${fileServer.url}/p2p-large.bin`, opts), 10)
      cpu.fs += cpuSeconds(fileServer.pid) - c
      cpu.baseBytes += r.result.bytes
      peakFs = Math.max(peakFs, r.peak)
      base.push(r.result.bytes / MB / (r.result.ms / 1000))
    }
    for (let i = 0; i < cfg.pairRuns; i++) {
      if (i % 2 === 0) {
        await timedPeer()
        await timedBase()
      } else {
        await timedBase()
        await timedPeer()
      }
    }
    const statsA = await a.stats()
    const statsB = await b.stats()
    const gcA = gcDelta(gcA0, await sidecarGc(a.url))
    const gcB = gcDelta(gcB0, await sidecarGc(b.url))
    const d = (s1: Record<string, number>, s0: Record<string, number>, k: string): number => (s1[k] ?? 0) - (s0[k] ?? 0)
    const gcText = (g: GcCounts): string => `${g.major} major of ${g.all} GCs, ${(g.seconds * 1000).toFixed(0)} ms`
    const warnings = warningSummary([a, b])

    log(
      `P2P transfer: B ${spread(peer, 0)} MB/s (${peer.length} peer hits of ${cfg.pairRuns} runs; rejected: ${
        rejected.join('; ') || 'none'
      }), file server ${spread(base, 0)} MB/s`
    )
    log(
      `P2P transfer: B's first byte after ${spread(peerPhaseMs, 0)} ms (peer fetch + verify), then ${
        spread(bodyMs, 0)
      } ms of body (B's commit ${spread(commitWaitMs, 0)} ms after the last byte); peak RSS A ${(peakA / MB).toFixed(0)} MB, B ${
        (peakB / MB).toFixed(0)
      } MB, file server ${(peakFs / MB).toFixed(0)} MB`
    )
    log(
      `P2P transfer: stats deltas: B peer_hits ${d(statsB, statsB0, 'peer_hits')}, B bytes_from_peers ${
        d(statsB, statsB0, 'bytes_from_peers')
      }, A bytes_served_to_peers ${d(statsA, statsA0, 'bytes_served_to_peers')}; GC A: ${gcText(gcA)}, B: ${gcText(gcB)}`
    )
    for (const w of warnings) log(`P2P transfer: node warning: ${w}`)

    const gib = (bytes: number): number => bytes / (1024 * MiB)
    ctx.samples['p2p_transfer'] = {
      bytes: blob.size,
      peer_mbps: peer,
      file_server_mbps: base,
      peer_phase_ms: peerPhaseMs,
      body_ms: bodyMs,
      commit_after_response_ms: commitWaitMs,
      sources,
      rejected_runs: rejected,
      b_store_cleared: removed,
      warm_up: warm === undefined ? undefined : describe(warm),
      rss: { before: rssBefore, peak_a: peakA, peak_b: peakB, peak_file_server: peakFs, hwm_used: hwmUsed },
      cpu_s: cpu,
      gc: { a: gcA, b: gcB },
      stats_delta: {
        b_peer_hits: d(statsB, statsB0, 'peer_hits'),
        b_upstream_hits: d(statsB, statsB0, 'upstream_hits'),
        b_bytes_from_peers: d(statsB, statsB0, 'bytes_from_peers'),
        a_bytes_served_to_peers: d(statsA, statsA0, 'bytes_served_to_peers')
      },
      warnings
    }

    const value = median(peer)
    const baseline = median(base)
    const ratio = ratioOf(value, baseline)
    const peerPhase = median(peerPhaseMs)
    rows.push({
      metric: `peer transfer ${sizeLabel} A->B, client sha256${KEY_LABEL}`,
      unit: 'MB/s',
      value,
      baseline,
      ratio,
      target: '>= 0.60',
      pass: ratio >= 0.6,
      digits: 0,
      note:
        `${peer.length} of ${cfg.pairRuns} runs were peer hits with no upstream GET (only those count${
          rejected.length > 0 ? `; others: ${rejected.join('; ')}` : ''
        }); ` +
        `sources: ${tally(sources)}; B's first byte after ${peerPhase.toFixed(0)} ms (peer fetch + verify = ${
          (blob.size / MB / (peerPhase / 1000)).toFixed(0)
        } MB/s), ` +
        `then ${median(bodyMs).toFixed(0)} ms of body from B's store; baseline: plain node:http file server, same bytes, client sha256`
    })
    const gcNote = `GC A: ${gcText(gcA)}, B: ${gcText(gcB)}`
    rows.push({
      metric: `peer transfer ${sizeLabel}: peak RSS of serving node A`,
      unit: 'MB',
      value: peakA / MB,
      baseline: peakFs / MB,
      ratio: ratioOf(peakA, peakFs),
      target: 'value < 150 MB',
      pass: peakA / MB < 150,
      digits: 0,
      note: `RSS before: A ${(rssBefore.a / MB).toFixed(0)} MB, file server ${
        (rssBefore.fs / MB).toFixed(0)
      } MB; baseline: the file server's peak while serving the same blob; ${hwmUsed ? 'VmHWM' : 'sampled VmRSS'}`
    })
    rows.push({
      metric: `peer transfer ${sizeLabel}: peak RSS of fetching node B`,
      unit: 'MB',
      value: peakB / MB,
      baseline: peakFs / MB,
      ratio: ratioOf(peakB, peakFs),
      target: '-',
      pass: undefined,
      digits: 0,
      note: `RSS before: B ${
        (rssBefore.b / MB).toFixed(0)
      } MB (B receives, verifies, stores, and serves its client meanwhile); baseline as above`
    })
    const fsCpu = cpu.fs / gib(cpu.baseBytes)
    for (const [who, seconds] of [['serving node A', cpu.a], ['fetching node B', cpu.b]] as const) {
      const perGib = seconds / gib(cpu.peerBytes)
      rows.push({
        metric: `peer transfer ${sizeLabel}: CPU per GiB moved, ${who}`,
        unit: 's',
        value: perGib,
        baseline: fsCpu,
        ratio: ratioOf(perGib, fsCpu),
        target: 'value <= 2 s',
        pass: perGib <= 2,
        digits: 2,
        note:
          `user+sys CPU of the whole process (threads included) over the timed peer runs, per GiB the client received; baseline: the plain file server per GiB served; ${gcNote}`
      })
    }
  })
}

// ---------------------------------------------------------------------------------------
// 6. Time to first byte of a peer hit on a 20-node swarm
// ---------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so a run's choices can be repeated (BENCH_SEED). */
function prng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6D2B79F5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffle<T> (xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const x = xs[i] as T
    xs[i] = xs[j] as T
    xs[j] = x
  }
  return xs
}

async function inBatches<T, R> (items: T[], size: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(fn)))
  return out
}

export async function swarmTtfb (ctx: P2pCtx, cfg: P2pConfig): Promise<void> {
  await withSectionCleanup(ctx, 'P2P swarm', async local => {
    const { work, registry, rows, log } = ctx
    const n = cfg.swarmNodes
    const seed = Number(process.env.BENCH_SEED ?? String(Date.now() % 1_000_000))
    const rand = prng(seed)
    const pick = (k: number): number => Math.floor(rand() * k)

    const root = join(work, 'swarm')
    const upstreams = `${registry.host}=${registry.url}`
    const all: P2pNode[] = [] // every started node, for teardown
    local.add('swarm nodes', async () => {
      await Promise.all(all.map(x => x.stop()))
    })
    log(`P2P swarm: starting ${n} nodes (${cfg.swarmStartBatch} at a time; seed ${seed})`)
    const t0 = performance.now()
    const first = await startP2pNode({ root, name: 'n00', upstreams, bootstrap: [], env: NODE_ENV })
    all.push(first)
    const rest = await startP2pNodes(n - 1, cfg.swarmStartBatch, i => ({
      root,
      name: `n${String(i + 1).padStart(2, '0')}`,
      upstreams,
      bootstrap: [first.dialAddr],
      env: NODE_ENV
    }), node => all.push(node))
    const nodes = [first, ...rest]
    const startedS = (performance.now() - t0) / 1000
    const peerCounts = await waitFor(async () => {
      const counts = await Promise.all(nodes.map(async x => (await x.info()).peers.length))
      return counts.every(c => c >= 1) && (counts[0] ?? 0) >= n - 1 ? counts : undefined
    }, { timeoutMs: 30_000, intervalMs: 100, what: `every node of the swarm connected (node 0 to all ${n - 1} others)` })
    const connectedS = (performance.now() - t0) / 1000
    const swarmCpu = (): number => nodes.reduce((sum, x) => sum + cpuSeconds(x.pid), 0)

    /**
     * Every sample is taken on a quiet swarm. All nodes share this machine's cores, and what a
     * request sets off in the background (the fetching node's provide, other nodes answering
     * DHT queries) would otherwise land on the next sample: waits (after a short pause for the
     * background work to start) until the whole swarm uses less than QUIET_CORES over
     * `windows` consecutive QUIET_WINDOW_MS windows, for at most `maxMs`. The wait and the CPU
     * the swarm used are reported.
     */
    const QUIET_CORES = 0.6
    const QUIET_WINDOW_MS = 250
    const QUIET_MAX_MS = 4_000
    const quiet = async (maxMs = QUIET_MAX_MS, windows = 2): Promise<{ waitedMs: number, reached: boolean }> => {
      const t = performance.now()
      await sleep(100)
      let calm = 0
      for (;;) {
        const c0 = swarmCpu()
        const w0 = performance.now()
        await sleep(QUIET_WINDOW_MS)
        const cores = (swarmCpu() - c0) / ((performance.now() - w0) / 1000)
        const waitedMs = performance.now() - t
        calm = cores < QUIET_CORES ? calm + 1 : 0
        // Quiet = `windows` calm windows in a row (background work comes in bursts); the
        // reported wait ends where the calm began.
        if (calm >= windows) return { waitedMs: waitedMs - (windows - 1) * QUIET_WINDOW_MS, reached: true }
        if (waitedMs > maxMs) return { waitedMs, reached: false }
      }
    }
    /** Runs `get` on a quiet swarm; the swarm's CPU from the request until quiet again. */
    const sample = async <T>(get: () => Promise<T>): Promise<{ result: T, cpuS: number, busyMs: number, reached: boolean }> => {
      const c0 = swarmCpu()
      const result = await get()
      const q = await quiet()
      return { result, cpuS: swarmCpu() - c0, busyMs: q.waitedMs, reached: q.reached }
    }
    // The DHT's own start-up queries; then the idle swarm's CPU use, for reference.
    const settle = await quiet(20_000, 4)
    const idleCpu0 = swarmCpu()
    await sleep(1_000)
    const idleCores = swarmCpu() - idleCpu0
    const settledCounts = await Promise.all(nodes.map(async x => (await x.info()).peers.length))
    const rss = nodes.map(x => memory(x.pid).rss)
    // Baseline: what a bare node:http process holds idle on this machine.
    const bare = await startFileServer(join(work, 'idle-baseline.bin'))
    const bareRss = memory(bare.pid).rss
    await bare.stop()
    log(
      `P2P swarm: ${n} nodes started in ${startedS.toFixed(1)} s (each ${spread(nodes.map(x => x.startMs), 0)} ms), all connected at ${
        connectedS.toFixed(1)
      } s, quiet ${(settle.waitedMs / 1000).toFixed(1)} s later${settle.reached ? '' : ' (NOT quiet: gave up)'}; peers per node ${
        spread(peerCounts, 0)
      } then ${spread(settledCounts, 0)} (median ${median(settledCounts)}); idle RSS per node ${
        spread(rss.map(x => x / MB), 0)
      } MB, total ${(rss.reduce((s, x) => s + x, 0) / MB).toFixed(0)} MB; idle swarm CPU ${idleCores.toFixed(2)} cores`
    )
    let notQuiet = 0

    // Small random blobs in the registry.
    const blobs: BlobFile[] = await inBatches(Array.from({ length: cfg.swarmBlobs }, (_, i) => i), 8, async i => {
      const blob = await randomBlobFile(work, `swarm-${i}.bin`, cfg.swarmBlobBytes)
      await uploadBlob(registry.url, REPO, blob.path, blob.size, blob.digest, cfg.requestTimeoutMs)
      await rm(blob.path, { force: true })
      return blob
    })
    const path = (b: BlobFile): string => `/v2/${REPO}/blobs/${b.digest}`
    const opts = (b: BlobFile): { hash: boolean, expectDigest: string, timeoutMs: number } => ({
      hash: true,
      expectDigest: b.digest,
      timeoutMs: cfg.requestTimeoutMs
    })

    // Seed: each blob into one random node, from upstream (a miss whose DHT lookup finds no
    // provider), each next to the same GET straight from the registry.
    const holders = blobs.map(() => new Set<string>())
    const seeders: number[] = []
    const missTtfb: number[] = []
    /** The claim round trip of each seeding miss (from the seeder's 'claim won' log line). */
    const missDecided: number[] = []
    const missCpu: number[] = []
    const missBusy: number[] = []
    const directTtfb: number[] = []
    const seedOther: Record<string, number> = {}
    for (const [i, blob] of blobs.entries()) {
      const s = pick(n)
      seeders.push(s)
      const node = nodes[s] as P2pNode
      directTtfb.push((await fetchBlob(`${registry.url}${path(blob)}`, opts(blob))).firstByteMs)
      const claimsBefore = node.claimsWonMs().length
      const { result: r, cpuS, busyMs, reached } = await sample(() => fetchBlob(`${node.url}${path(blob)}`, opts(blob)))
      missDecided.push(...node.claimsWonMs().slice(claimsBefore))
      if (!reached) notQuiet++
      const xc = header(r, 'x-cache') ?? '-'
      if (xc === 'MISS') {
        missTtfb.push(r.firstByteMs)
        missCpu.push(cpuS)
        missBusy.push(busyMs)
      } else seedOther[xc] = (seedOther[xc] ?? 0) + 1
      holders[i]?.add(node.peerId)
    }
    log(
      `P2P swarm: ${blobs.length} blobs of ${cfg.swarmBlobBytes / 1024} KiB seeded into ${new Set(seeders).size} nodes; miss TTFB ${
        spread(missTtfb, 0)
      } ms (p50 ${median(missTtfb).toFixed(0)}), registry direct p50 ${
        median(directTtfb).toFixed(1)
      } ms; swarm CPU per miss (lookup + provide) p50 ${median(missCpu).toFixed(2)} s, busy ${median(missBusy).toFixed(0)} ms after${
        Object.keys(seedOther).length > 0 ? `; seeding GETs not MISS: ${tally(seedOther)}` : ''
      }`
    )

    // Requests: for each blob, nodes other than its seeder, all shuffled together. Each peer
    // hit is followed by a local hit of the same blob on the same node: the baseline.
    const pairs: Array<{ blob: number, node: number }> = []
    for (const [i] of blobs.entries()) {
      const others = shuffle(nodes.map((_, k) => k).filter(k => k !== seeders[i]), rand)
      for (const k of others.slice(0, cfg.swarmRequestersPerBlob)) pairs.push({ blob: i, node: k })
    }
    shuffle(pairs, rand)
    await registry.settled()
    registry.clearRequests()
    const peerFirstByte: number[] = []
    const peerHeaders: number[] = []
    const peerCpu: number[] = []
    const peerBusy: number[] = []
    /** By how many nodes had the blob when it was asked for: 1 = only its seeder. */
    const byHolders: Record<string, number[]> = {}
    const peerConnected: number[] = []
    const peerDialed: number[] = []
    const localFirstByte: number[] = []
    const other: Record<string, number> = {}
    const sourceKinds: Record<string, number> = {}
    const localOther: Record<string, number> = {}
    const gcBefore = await Promise.all(nodes.map(x => sidecarGc(x.url)))
    const t1 = performance.now()
    for (const { blob: bi, node: ni } of pairs) {
      const blob = blobs[bi] as BlobFile
      const node = nodes[ni] as P2pNode
      const have = holders[bi] as Set<string>
      // Untimed: is the requester already connected to a node that has the blob?
      const connected = (await node.info()).peers.some(p => have.has(p.peerId))
      const claimsBefore = node.claimsWonMs().length
      const { result: r, cpuS, busyMs, reached } = await sample(() => fetchBlob(`${node.url}${path(blob)}`, opts(blob)))
      missDecided.push(...node.claimsWonMs().slice(claimsBefore))
      if (!reached) notQuiet++
      const xc = header(r, 'x-cache') ?? '-'
      if (xc !== 'PEER') {
        other[xc] = (other[xc] ?? 0) + 1
      } else {
        peerFirstByte.push(r.firstByteMs)
        peerHeaders.push(r.ttfbMs)
        peerCpu.push(cpuS)
        peerBusy.push(busyMs)
        ;(connected ? peerConnected : peerDialed).push(r.firstByteMs)
        const h = have.size === 1 ? '1' : have.size <= 3 ? '2-3' : '4+'
        ;(byHolders[h] ??= []).push(r.firstByteMs)
        const src = header(r, 'x-cache-source') ?? '-'
        const kind = src === nodes[seeders[bi] ?? -1]?.peerId
          ? 'seeder'
          : have.has(src)
          ? 'earlier fetcher'
          : src === node.peerId
          ? 'itself'
          : 'unknown'
        sourceKinds[kind] = (sourceKinds[kind] ?? 0) + 1
        // Baseline: the same blob again from the same node, now a local hit (the swarm is
        // quiet again: sample() waited).
        const hit = await fetchBlob(`${node.url}${path(blob)}`, opts(blob))
        const hx = header(hit, 'x-cache') ?? '-'
        if (hx === 'HIT') localFirstByte.push(hit.firstByteMs)
        else localOther[hx] = (localOther[hx] ?? 0) + 1
      }
      have.add(node.peerId)
    }
    const sampleS = (performance.now() - t1) / 1000
    await registry.settled()
    const upstreamGets = blobs.reduce((s, b) => s + registry.count({ method: 'GET', pathIncludes: `/blobs/${b.digest}` }), 0)
    const gcAfter = await Promise.all(nodes.map(x => sidecarGc(x.url)))
    const gc = gcBefore.reduce<GcCounts>((acc, g0, i) => {
      const g = gcDelta(g0, gcAfter[i] ?? g0)
      return { major: acc.major + g.major, all: acc.all + g.all, seconds: acc.seconds + g.seconds }
    }, { major: 0, all: 0, seconds: 0 })
    const statsAll = await Promise.all(nodes.map(x => x.stats()))
    const sum = (k: string): number => statsAll.reduce((s, x) => s + (x[k] ?? 0), 0)
    const rssAfter = nodes.map(x => memory(x.pid).rss)
    const warnings = warningSummary(nodes)

    const p50 = percentile(peerFirstByte, 50)
    const p95 = percentile(peerFirstByte, 95)
    const l50 = percentile(localFirstByte, 50)
    const l95 = percentile(localFirstByte, 95)
    const holdersText = Object.entries(byHolders).sort().map(([k, xs]) =>
      `${k} holder(s): ${xs.length} hits, p50 ${percentile(xs, 50).toFixed(1)} ms`
    ).join('; ')
    log(
      `P2P swarm: ${pairs.length} GETs in ${sampleS.toFixed(1)} s: ${peerFirstByte.length} PEER (first byte p50 ${p50.toFixed(1)} ms, p95 ${
        p95.toFixed(1)
      } ms, max ${Math.max(...peerFirstByte).toFixed(1)} ms; headers p50 ${percentile(peerHeaders, 50).toFixed(1)} ms), others: ${
        tally(other)
      }; sources: ${tally(sourceKinds)}`
    )
    log(
      `P2P swarm: by holders: ${holdersText}; provider already connected: ${peerConnected.length} (p50 ${
        percentile(peerConnected, 50).toFixed(1)
      } ms), dial needed: ${peerDialed.length} (p50 ${percentile(peerDialed, 50).toFixed(1)} ms); local HIT p50 ${l50.toFixed(2)} ms, p95 ${
        l95.toFixed(2)
      } ms${
        Object.keys(localOther).length > 0 ? `, second GETs not HIT: ${tally(localOther)}` : ''
      }; upstream GETs meanwhile ${upstreamGets}`
    )
    log(
      `P2P swarm: swarm CPU per peer hit (lookup, fetch, then the fetcher's provide) p50 ${median(peerCpu).toFixed(2)} s, swarm busy ${
        median(peerBusy).toFixed(0)
      } ms after the response (p95 ${
        percentile(peerBusy, 95).toFixed(0)
      }); ${notQuiet} samples found the swarm still busy after ${QUIET_MAX_MS} ms`
    )
    log(
      `P2P swarm: totals over all nodes: peer_hits ${sum('peer_hits')}, upstream_hits ${sum('upstream_hits')}, bytes_from_peers ${
        sum('bytes_from_peers')
      }, bytes_served_to_peers ${sum('bytes_served_to_peers')}; GC ${gc.major} major of ${gc.all}, ${
        (gc.seconds * 1000).toFixed(0)
      } ms; RSS per node after ${spread(rssAfter.map(x => x / MB), 0)} MB`
    )
    for (const w of warnings) log(`P2P swarm: node warning: ${w}`)
    ctx.samples['p2p_swarm'] = {
      nodes: n,
      seed,
      started_s: startedS,
      connected_s: connectedS,
      node_start_ms: nodes.map(x => x.startMs),
      peers_per_node: settledCounts,
      idle_rss: rss,
      rss_after: rssAfter,
      idle_cores: idleCores,
      settle_after_start_ms: settle.waitedMs,
      quiet: { cores_below: QUIET_CORES, window_ms: QUIET_WINDOW_MS, max_ms: QUIET_MAX_MS, samples_not_quiet: notQuiet },
      blobs: blobs.length,
      blob_bytes: cfg.swarmBlobBytes,
      requests: pairs.length,
      peer_first_byte_ms: peerFirstByte,
      peer_headers_ms: peerHeaders,
      peer_connected_ms: peerConnected,
      peer_dialed_ms: peerDialed,
      peer_by_holders_ms: byHolders,
      peer_swarm_cpu_s: peerCpu,
      peer_swarm_busy_ms: peerBusy,
      local_hit_first_byte_ms: localFirstByte,
      not_peer: other,
      sources: sourceKinds,
      local_not_hit: localOther,
      upstream_gets_while_sampling: upstreamGets,
      miss_first_byte_ms: missTtfb,
      miss_decided_ms: missDecided,
      miss_swarm_cpu_s: missCpu,
      miss_swarm_busy_ms: missBusy,
      direct_first_byte_ms: directTtfb,
      seeding_not_miss: seedOther,
      stats_totals: {
        peer_hits: sum('peer_hits'),
        upstream_hits: sum('upstream_hits'),
        bytes_from_peers: sum('bytes_from_peers'),
        bytes_served_to_peers: sum('bytes_served_to_peers')
      },
      gc,
      warnings
    }

    const label = `${n}-node swarm, ${cfg.swarmBlobBytes / 1024} KiB blob${KEY_LABEL}`
    const idleRss = median(rss) / MB
    rows.push({
      metric: `idle RSS per node, ${n}-node swarm (median)`,
      unit: 'MB',
      value: idleRss,
      baseline: bareRss / MB,
      ratio: ratioOf(idleRss, bareRss / MB),
      target: 'value <= 100 MB',
      pass: idleRss <= 100,
      digits: 0,
      note: `each node connected and quiet, before any request; spread ${
        spread(rss.map(x => x / MB), 0)
      } MB; baseline: a bare node:http file server process, idle`
    })
    rows.push({
      metric: `peer hit TTFB p50, ${label}`,
      unit: 'ms',
      value: p50,
      baseline: l50,
      ratio: ratioOf(p50, l50),
      target: 'value < 50 ms',
      pass: p50 < 50,
      digits: 1,
      note:
        `${peerFirstByte.length} of ${pairs.length} GETs were X-Cache: PEER (others: ${
          tally(other)
        }; upstream GETs meanwhile: ${upstreamGets}); ` +
        `sources: ${tally(sourceKinds)}; ${holdersText}; swarm CPU per peer hit p50 ${median(peerCpu).toFixed(2)} s (idle swarm: ${
          idleCores.toFixed(2)
        } cores); ` +
        'TTFB = request sent to first body byte on a new connection, each sample on a quiet swarm; baseline: a local HIT of the same blob on the same node right after'
    })
    rows.push({
      metric: `peer hit TTFB p95, ${label}`,
      unit: 'ms',
      value: p95,
      baseline: l95,
      ratio: ratioOf(p95, l95),
      target: '-',
      pass: undefined,
      digits: 1
    })
    const m50 = percentile(missTtfb, 50)
    const d50 = percentile(directTtfb, 50)
    rows.push({
      metric: `upstream miss TTFB p50 on the swarm (no provider), ${cfg.swarmBlobBytes / 1024} KiB`,
      unit: 'ms',
      value: m50,
      baseline: d50,
      ratio: ratioOf(m50, d50),
      target: 'value < 30 ms',
      pass: m50 < 30,
      digits: 1,
      note:
        `${missTtfb.length} seeding GETs (a claim at the digest's coordinator that answers "fetch", then upstream), each on a quiet swarm; swarm CPU per miss (claim, upstream, provide) p50 ${
          median(missCpu).toFixed(2)
        } s; baseline: the same GET straight from the registry`
    })
    const c50 = percentile(missDecided, 50)
    rows.push({
      metric: `miss decided on the swarm (claim round trip) p50, ${label}`,
      unit: 'ms',
      value: c50,
      baseline: d50,
      ratio: ratioOf(c50, d50),
      target: 'value < 30 ms',
      pass: missDecided.length > 0 && c50 < 30,
      digits: 1,
      note:
        `${missDecided.length} claims answered "fetch" (claimMs of the seeders' 'claim won' lines: coordinator chosen, asked, answered); docs/design.md §6: a miss nobody can serve is decided in < 30 ms; baseline: a GET straight from the registry (TTFB)`
    })
  })
}
