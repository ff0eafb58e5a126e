/**
 * The herd rows of `npm run bench` (docs/design.md §6, issue 12): N runners pull one cold image at
 * the same moment, each with skopeo through its own sidecar, and the upstream should see one
 * copy of it.
 *
 *   For N = 3, 5, 10 sidecar processes on loopback (BENCH_QUICK: 3 and 5; BENCH_HERD_NODES
 *   overrides), each N with a swarm of its own, started at once (BENCH_HERD_START_BATCH limits
 *   that) with every node bootstrapped to all the others, as runners sharing one
 *   CACHE_BOOTSTRAP_PEERS list are, and given up to 10 s to be a full mesh (connected, and each
 *   node's routing table holding the others: the coordinator of a digest is picked from it; a
 *   swarm that is not is measured anyway and the note says so); and a new image of `layers`
 *   random layers, so that it is cold everywhere:
 *     - upstream blob bytes / image size (docs/design.md §6: <= 1.1), from the registry's log: GETs per blob
 *       digest times the blob's size from the image description (a blob GET is a full download;
 *       Range requests, answered 206, are counted whole and reported);
 *     - the most manifest GETs of one manifest digest (docs/design.md §6: one); a GET by tag counts for the
 *       digest the tag points at, HEADs (how a sidecar resolves a tag) do not count;
 *     - the slowest of the N pulls / a lone pull straight from the registry with skopeo, the
 *       same image, measured just before on the same (idle) swarm (docs/design.md §6: <= 1.3).
 *   The sidecars' claims_won, claims_joined, peer_inflight_joins and upstream_fetches_saved
 *   (the swarm-wide single-flight's counters; absent = 0) are summed into the notes.
 *
 *   And, as root where network namespaces can be made (BENCH_HERD_NETNS=0 skips it), the same
 *   for 3 emulated hosts and the registry, each in its own namespace on one bridge, every link
 *   shaped to 200 Mbit each way with tc tbf: what a herd of runners on one LAN sees, where the
 *   per-host link rather than this machine's CPU is the limit.
 *
 * On loopback all N sidecars and N skopeo processes share this machine's cores, so the slowest
 * pull there measures CPU as much as the herd's coordination; N concurrent direct pulls are
 * measured too (a note) to show what the machine does without any sidecar.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { bridge, netnsUnavailable, Netns, run, veth } from '../../test/fixtures/netns.js'
import { buildImage } from '../../test/fixtures/oci-image.js'
import { parseRequestLine, REGISTRY_BIN, type Registry, type RegistryRequest } from '../../test/fixtures/registry.js'
import { runCli, startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { pullToLayout, pushLayout } from '../../test/fixtures/skopeo.js'
import { freePort } from '../../test/fixtures/ports.js'
import { warnLines } from '../../test/fixtures/swarm.js'
import { httpStatus, waitFor } from '../../test/fixtures/wait.js'
import { Cleanup, withSectionCleanup } from './cleanup.js'
import { sleep, spread } from './common.js'
import { cpuProfileArgs, startP2pNodes, type P2pNode } from './p2p-node.js'
import { summarizeWarnings, tally, type P2pCtx } from './p2p.js'
import { cpuSeconds, machineCpuSeconds, memory, resetPeak } from './proc.js'
import { median, MB, MiB, ratioOf } from './report.js'

export interface HerdConfig {
  /** One herd per entry: that many sidecars (and pulls) on loopback. */
  nodeCounts: number[]
  /** The image: `layers` random layers of `layerBytes` each (before gzip, which gains nothing). */
  layers: number
  layerBytes: number
  /** Timed lone direct pulls per herd (after an untimed one, on loopback). */
  directRuns: number
  /** Sidecars started at once (start-up is CPU-bound, but runners start together, and a node
   *  whose bootstrap peers are not up yet retries them later). */
  startBatch: number
  /** The emulated-hosts herds: whether to try them, their host counts, link rate, and whether every sidecar bootstraps to host 1 only (as runners sharing one CACHE_BOOTSTRAP_PEERS do) or to all. */
  netns: boolean
  netnsHosts: number[]
  netnsRateMbit: number
  netnsBootstrapAll: boolean
  requestTimeoutMs: number
}

export function herdConfig (quick: boolean, requestTimeoutMs: number): HerdConfig {
  const nodes = process.env.BENCH_HERD_NODES
  return {
    nodeCounts: listOf(nodes) ?? (quick ? [3, 5] : [3, 5, 10]),
    layers: 3,
    layerBytes: (quick ? 8 : 25) * MiB,
    directRuns: quick ? 2 : 3,
    startBatch: Number(process.env.BENCH_HERD_START_BATCH ?? '10'),
    netns: process.env.BENCH_HERD_NETNS !== '0',
    netnsHosts: listOf(process.env.BENCH_HERD_NETNS_HOSTS) ?? (quick ? [3] : [3, 10, 20]),
    netnsRateMbit: Number(process.env.BENCH_HERD_NETNS_MBIT ?? '100'),
    netnsBootstrapAll: process.env.BENCH_HERD_NETNS_BOOTSTRAP === 'all',
    requestTimeoutMs
  }
}

/** `3,10,20` → [3, 10, 20] (sizes of 2 or more); undefined when unset. */
function listOf (value: string | undefined): number[] | undefined {
  return value === undefined ? undefined : value.split(',').map(Number).filter(n => Number.isInteger(n) && n >= 2)
}

const TAG = 'v1'
/** How long a new swarm gets to become a full mesh (connections and routing tables); the herd
 *  runs anyway after it, with a note. */
const MESH_TIMEOUT_MS = 10_000
/** Query marker the registry fixture never records (its own probes carry it too). */
const FIXTURE_MARK = 'p2p-cache-fixture-'

// ---------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------

interface HerdImage {
  repo: string
  manifestDigest: string
  /** What a pull GETs as blobs (config and layers): digest → size in bytes. */
  blobs: Map<string, number>
  /** Sum of `blobs`: the image size the upstream bytes are compared with. */
  bytes: number
  /** Every digest a pulled OCI layout must hold (manifest, config, layers). */
  layoutDigests: string[]
}

async function pushImage (work: string, registry: Registry, repo: string, cfg: HerdConfig): Promise<HerdImage> {
  const dir = await mkdtemp(join(work, 'herd-image-'))
  try {
    const image = await buildImage(dir, { tag: TAG, layers: cfg.layers, layerSize: cfg.layerBytes })
    const configSize = (await stat(join(dir, 'blobs', 'sha256', image.configDigest.slice('sha256:'.length)))).size
    await pushLayout(dir, TAG, registry.host, repo, { timeoutMs: cfg.requestTimeoutMs })
    const blobs = new Map<string, number>([[image.configDigest, configSize], ...image.layers.map(l => [l.digest, l.size] as const)])
    return {
      repo,
      manifestDigest: image.manifestDigest,
      blobs,
      bytes: [...blobs.values()].reduce((s, x) => s + x, 0),
      layoutDigests: image.allBlobDigests
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function checkLayout (out: string, image: HerdImage): Promise<void> {
  const got = new Set((await readdir(join(out, 'blobs', 'sha256'))).map(h => `sha256:${h}`))
  const missing = image.layoutDigests.filter(d => !got.has(d))
  if (missing.length > 0) throw new Error(`pulled layout ${out} lacks ${missing.join(', ')}`)
}

/** One skopeo pull of the image into the (empty) OCI layout `out`. */
type Puller = (out: string) => Promise<void>

/** A pull timed from its start to skopeo's exit; the layout is checked, then removed. */
async function timedPull (work: string, image: HerdImage, pull: Puller): Promise<number> {
  const out = await mkdtemp(join(work, 'herd-pull-'))
  try {
    const t = performance.now()
    await pull(out)
    const s = (performance.now() - t) / 1000
    await checkLayout(out, image)
    return s
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}

/** All pulls started in the same tick; each one's seconds from that moment to its exit. */
async function pullAtOnce (work: string, image: HerdImage, pulls: Puller[]): Promise<number[]> {
  const outs = await Promise.all(pulls.map(() => mkdtemp(join(work, 'herd-pull-'))))
  try {
    const t0 = performance.now()
    const settled = await Promise.allSettled(pulls.map(async (pull, i) => {
      await pull(outs[i] as string)
      return (performance.now() - t0) / 1000
    }))
    const failed = settled.flatMap((s, i) =>
      s.status === 'rejected' ? [`pull ${i}: ${(s.reason as Error).message ?? String(s.reason)}`] : []
    )
    if (failed.length > 0) throw new Error(`${failed.length} of ${pulls.length} pulls failed:\n${failed.join('\n')}`)
    for (const out of outs) await checkLayout(out, image)
    return settled.map(s => s.status === 'fulfilled' ? s.value : NaN)
  } finally {
    await Promise.all(outs.map(out => rm(out, { recursive: true, force: true })))
  }
}

// ---------------------------------------------------------------------------------------
// What the upstream saw
// ---------------------------------------------------------------------------------------

interface LoggedRequest extends RegistryRequest {
  /** http.response.written of the registry's log line, when known. */
  written?: number
  /** http.response.duration, milliseconds, when known. */
  durationMs?: number
}

/** The registry's log from mark() on. */
interface UpstreamLog {
  mark: () => Promise<void>
  /** Every request answered since mark(), once all of them are logged. */
  collect: () => Promise<{ requests: LoggedRequest[], writtenKnown: boolean }>
}

const GO_UNITS_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 1e-3, 'µs': 1e-3, ns: 1e-6 }

/** A Go time.Duration as printed ("850ms", "1.2s", "1m2.5s", "903.522µs"), in milliseconds. */
function goDurationMs (text: string): number | undefined {
  let total = 0
  let seen = ''
  for (const m of text.matchAll(/([\d.]+)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(m[1]) * (GO_UNITS_MS[m[2] as string] ?? NaN)
    seen += m[0]
  }
  return seen !== '' && seen === text && Number.isFinite(total) ? total : undefined
}

/** Bytes written and duration from a registry JSON log line. */
function logFields (line: string): { written?: number, durationMs?: number } {
  try {
    const o = JSON.parse(line) as Record<string, unknown>
    const w = o['http.response.written']
    const d = o['http.response.duration']
    const durationMs = typeof d === 'string' ? goDurationMs(d) : undefined
    return { ...(typeof w === 'number' ? { written: w } : {}), ...(durationMs !== undefined ? { durationMs } : {}) }
  } catch {
    return {}
  }
}

/**
 * The registry fixture's log. The fixture keeps method, URI and status; the bytes written are
 * taken from its last log lines (200) when they reach back to our mark, else not reported.
 */
function fixtureLog (registry: Registry): UpstreamLog {
  let id = ''
  return {
    mark: async () => {
      await registry.settled()
      id = randomBytes(6).toString('hex')
      await httpStatus(`${registry.url}/v2/?${FIXTURE_MARK}herd-mark=${id}`, 5_000)
      registry.clearRequests()
    },
    collect: async () => {
      await registry.settled()
      const requests: LoggedRequest[] = registry.requests()
      const tail = registry.logTail(200).split('\n')
      const at = tail.findIndex(l => l.startsWith('{') && l.includes(`herd-mark=${id}`))
      if (at < 0) return { requests, writtenKnown: false }
      const logged = tail.slice(at + 1).flatMap(line => {
        const r = parseRequestLine(line)
        return r === undefined || r.path.includes(FIXTURE_MARK) ? [] : [{ r, fields: logFields(line) }]
      })
      const same = logged.length === requests.length &&
        logged.every((x, i) => x.r.path === requests[i]?.path && x.r.method === requests[i]?.method)
      if (!same) return { requests, writtenKnown: false }
      return {
        requests: requests.map((r, i) => ({ ...r, ...logged[i]?.fields })),
        writtenKnown: logged.every(x => x.fields.written !== undefined)
      }
    }
  }
}

interface UpstreamUse {
  /** Blob GETs answered 200 or 206, by digest (the image's blobs only). */
  blobGets: Record<string, number>
  /** Of those, answered 206 (a Range request: a resumed or partial download). */
  rangeGets: number
  /** Blob GETs answered otherwise (404, 5xx...). */
  failedBlobGets: number
  blobHeads: number
  /** Sum of the blob sizes over the counted GETs (a 206 counted whole: an upper bound). */
  blobBytes: number
  /** Sum of http.response.written over the same GETs, when the log had it. */
  writtenBytes: number | undefined
  /** The longest of those GETs (the registry's http.response.duration), ms, when the log had it. */
  slowestBlobGetMs: number | undefined
  /** Manifest GETs by manifest digest; a GET by tag counts for the digest of the tag. */
  manifestGets: Record<string, number>
  manifestHeadsByTag: number
  manifestHeadsByDigest: number
  /** Requests for anything else (other repositories, unknown digests, /v2/). */
  other: number
}

const short = (digest: string): string => digest.slice('sha256:'.length, 'sha256:'.length + 12)

function upstreamUse (requests: LoggedRequest[], writtenKnown: boolean, image: HerdImage): UpstreamUse {
  const use: UpstreamUse = {
    blobGets: {},
    rangeGets: 0,
    failedBlobGets: 0,
    blobHeads: 0,
    blobBytes: 0,
    writtenBytes: writtenKnown ? 0 : undefined,
    slowestBlobGetMs: undefined,
    manifestGets: {},
    manifestHeadsByTag: 0,
    manifestHeadsByDigest: 0,
    other: 0
  }
  for (const d of image.blobs.keys()) use.blobGets[short(d)] = 0
  use.manifestGets[short(image.manifestDigest)] = 0
  const prefix = `/v2/${image.repo}/`
  for (const r of requests) {
    const path = r.path.split('?')[0] ?? ''
    const rest = path.startsWith(prefix) ? path.slice(prefix.length) : ''
    const blob = /^blobs\/(sha256:[0-9a-f]{64})$/.exec(rest)
    const manifest = /^manifests\/(.+)$/.exec(rest)
    const size = blob === null ? undefined : image.blobs.get(blob[1] as string)
    if (blob !== null && size !== undefined) {
      const digest = blob[1] as string
      if (r.method === 'HEAD') {
        use.blobHeads++
        continue
      }
      if (r.method !== 'GET') {
        use.other++
        continue
      }
      if (r.status !== 200 && r.status !== 206) {
        use.failedBlobGets++
        continue
      }
      if (r.status === 206) use.rangeGets++
      use.blobGets[short(digest)] = (use.blobGets[short(digest)] ?? 0) + 1
      use.blobBytes += size
      if (use.writtenBytes !== undefined) use.writtenBytes += r.written ?? 0
      if (r.durationMs !== undefined) use.slowestBlobGetMs = Math.max(use.slowestBlobGetMs ?? 0, r.durationMs)
    } else if (manifest !== null && (manifest[1] === TAG || manifest[1] === image.manifestDigest)) {
      const byTag = manifest[1] === TAG
      if (r.method === 'HEAD') {
        if (byTag) use.manifestHeadsByTag++
        else use.manifestHeadsByDigest++
        continue
      }
      if (r.method !== 'GET' || r.status !== 200) {
        use.other++
        continue
      }
      const key = short(image.manifestDigest)
      use.manifestGets[key] = (use.manifestGets[key] ?? 0) + 1
    } else {
      use.other++
    }
  }
  return use
}

// ---------------------------------------------------------------------------------------
// Sidecar counters
// ---------------------------------------------------------------------------------------

/** The single-flight's counters (issue 12); a build without them reads 0. */
const HERD_COUNTERS = ['claims_won', 'claims_joined', 'peer_inflight_joins', 'upstream_fetches_saved'] as const
const OTHER_COUNTERS = [
  'upstream_hits',
  'peer_hits',
  'hits',
  'misses',
  'bytes_from_upstream',
  'bytes_from_peers',
  'bytes_from_peers_data_channel',
  'bytes_from_partial_holders',
  'pieces_from_peers',
  'pieces_refetched',
  'pieces_served_to_peers',
  'peer_busy_answers',
  'bytes_served_to_peers',
  'errors'
] as const

function num (stats: Record<string, unknown>, key: string): number {
  const v = stats[key]
  return typeof v === 'number' && Number.isFinite(v) ? v : 0
}

interface CounterDeltas {
  /** Per counter, after - before summed over the nodes. */
  sums: Record<string, number>
  /** Per counter, after - before of each node, in node order. */
  perNode: Record<string, number[]>
  /** Counters no node reported. */
  absent: string[]
}

function counterDeltas (before: Array<Record<string, unknown>>, after: Array<Record<string, unknown>>): CounterDeltas {
  const out: CounterDeltas = { sums: {}, perNode: {}, absent: [] }
  for (const key of [...HERD_COUNTERS, ...OTHER_COUNTERS]) {
    const each = after.map((a, i) => num(a, key) - num(before[i] ?? {}, key))
    out.perNode[key] = each
    out.sums[key] = each.reduce((s, x) => s + x, 0)
    if (after.every(a => typeof a[key] !== 'number')) out.absent.push(key)
  }
  return out
}

// ---------------------------------------------------------------------------------------
// One herd, wherever its nodes run
// ---------------------------------------------------------------------------------------

interface Scenario {
  /** Row label, e.g. "herd, 5 sidecars on loopback". */
  label: string
  /** Key in results.json samples. */
  key: string
  nodes: number
  image: HerdImage
  /** A pull straight from the registry (the baseline). */
  direct: Puller
  /** Node i's pull through its own sidecar. */
  viaNode: Puller[]
  /** Also time `nodes` direct pulls at once (a note). */
  concurrentDirect: boolean
  /** One untimed direct pull first (skopeo and the registry's files not yet in the page cache). */
  warmUp: boolean
  upstream: UpstreamLog
  stats: () => Promise<Array<Record<string, unknown>>>
  warnings: () => string[]
  pids: number[]
  /** How the swarm came up, for the notes. */
  setup: string
  log: (msg: string) => void
}

/** Waits until `pids` together use < 0.5 cores over two 250 ms windows in a row (at most maxMs). */
async function quiet (pids: number[], maxMs: number): Promise<{ waitedMs: number, reached: boolean }> {
  const cpu = (): number =>
    pids.reduce((s, pid) => {
      try {
        return s + cpuSeconds(pid)
      } catch {
        return s
      }
    }, 0)
  const t = performance.now()
  let calm = 0
  while (performance.now() - t < maxMs) {
    const c0 = cpu()
    const w0 = performance.now()
    await sleep(250)
    calm = (cpu() - c0) / ((performance.now() - w0) / 1000) < 0.5 ? calm + 1 : 0
    if (calm >= 2) return { waitedMs: performance.now() - t, reached: true }
  }
  return { waitedMs: performance.now() - t, reached: false }
}

async function measureHerd (work: string, s: Scenario, cfg: HerdConfig, rows: P2pCtx['rows'], samples: P2pCtx['samples']): Promise<void> {
  const { image, log } = s
  const q = await quiet(s.pids, 15_000)
  log(`${s.label}: swarm quiet after ${(q.waitedMs / 1000).toFixed(1)} s${q.reached ? '' : ' (NOT quiet: gave up)'}`)

  // Baseline: lone pulls straight from the registry.
  if (s.warmUp) await timedPull(work, image, s.direct)
  const direct: number[] = []
  for (let i = 0; i < cfg.directRuns; i++) direct.push(await timedPull(work, image, s.direct))
  let concurrentDirect: number[] | undefined
  if (s.concurrentDirect) concurrentDirect = await pullAtOnce(work, image, Array.from({ length: s.nodes }, () => s.direct))
  log(
    `${s.label}: lone direct pull ${spread(direct, 2)} s${
      concurrentDirect === undefined ? '' : `; ${s.nodes} direct pulls at once: slowest ${Math.max(...concurrentDirect).toFixed(2)} s`
    }`
  )

  // The herd.
  await s.upstream.mark()
  const before = await s.stats()
  const sidecarCpu = (): number =>
    s.pids.reduce((sum, pid) => {
      try {
        return sum + cpuSeconds(pid)
      } catch {
        return sum
      }
    }, 0)
  const cpu0 = { sidecars: sidecarCpu(), machine: machineCpuSeconds() }
  // Peak RSS per sidecar over the herd (VmHWM after a reset; the pids of netns hosts are this machine's too).
  for (const pid of s.pids) resetPeak(pid)
  const herdStart = performance.now()
  const herd = await pullAtOnce(work, image, s.viaNode)
  const herdWall = (performance.now() - herdStart) / 1000
  const cpuUsed = { sidecars: sidecarCpu() - cpu0.sidecars, machine: machineCpuSeconds() - cpu0.machine }
  const rss = s.pids.flatMap(pid => {
    try {
      return [memory(pid).hwm]
    } catch {
      return []
    }
  }).sort((a, b) => a - b)
  const { requests, writtenKnown } = await s.upstream.collect()
  const after = await s.stats()
  const use = upstreamUse(requests, writtenKnown, image)
  const counters = counterDeltas(before, after)
  const warnings = summarizeWarnings(s.warnings())

  const slowest = Math.max(...herd)
  const lone = median(direct)
  const bytesRatio = use.blobBytes / image.bytes
  const maxManifestGets = Math.max(...Object.values(use.manifestGets))
  const blobGetsText = Object.entries(use.blobGets).map(([d, n]) => `${d} x${n}`).join(', ')
  const c = counters.sums
  const countersText = `${HERD_COUNTERS.map(k => `${k} ${c[k] ?? 0}`).join(', ')}${
    counters.absent.some(k => (HERD_COUNTERS as readonly string[]).includes(k))
      ? ` (not reported: ${counters.absent.filter(k => (HERD_COUNTERS as readonly string[]).includes(k)).join(', ')})`
      : ''
  }`
  const othersText = OTHER_COUNTERS.map(k => `${k} ${k.startsWith('bytes') ? `${((c[k] ?? 0) / MB).toFixed(1)} MB` : String(c[k] ?? 0)}`)
    .join(', ')
  const perNode = (k: string, scale = 1, digits = 0): string => (counters.perNode[k] ?? []).map(x => (x / scale).toFixed(digits)).join('/')
  const spreadText = `per node: claims_won ${perNode('claims_won')}, upstream_hits ${perNode('upstream_hits')}, MB served to peers ${
    perNode('bytes_served_to_peers', MB)
  }`
  const upstreamTime = use.slowestBlobGetMs === undefined ? 'not in the log tail' : `${(use.slowestBlobGetMs / 1000).toFixed(2)} s`
  log(
    `${s.label}: pulls ${herd.map(x => x.toFixed(2)).join(', ')} s (slowest ${slowest.toFixed(2)} s = ${
      (slowest / lone).toFixed(2)
    } x lone direct ${lone.toFixed(2)} s)`
  )
  log(
    `${s.label}: upstream blob GETs ${blobGetsText} (${use.rangeGets} Range, ${use.failedBlobGets} failed, ${use.blobHeads} HEAD) = ${
      (use.blobBytes / MB).toFixed(1)
    } MB = ${bytesRatio.toFixed(2)} x image${
      use.writtenBytes === undefined ? '' : `, written per the log ${(use.writtenBytes / MB).toFixed(1)} MB`
    }; manifest GETs ${
      tally(use.manifestGets)
    }, HEADs by tag ${use.manifestHeadsByTag}, by digest ${use.manifestHeadsByDigest}; other requests ${use.other}`
  )
  log(`${s.label}: sidecar counters: ${countersText}; ${othersText}; ${spreadText}; longest upstream blob GET ${upstreamTime}`)
  const cpuText =
    `CPU during the herd: sidecars ${cpuUsed.sidecars.toFixed(1)} s, the whole machine ${cpuUsed.machine.toFixed(1)} s of ${
      (herdWall * cpus().length).toFixed(1)
    } s (${cpus().length} cores x ${herdWall.toFixed(1)} s)` +
    (rss.length === 0
      ? ''
      : `; peak RSS per sidecar: median ${(median(rss) / MiB).toFixed(0)} MiB, max ${(Math.max(...rss) / MiB).toFixed(0)} MiB`)
  log(`${s.label}: ${cpuText}`)
  for (const w of warnings) log(`${s.label}: node warning: ${w}`)

  samples[s.key] = {
    nodes: s.nodes,
    setup: s.setup,
    image_bytes: image.bytes,
    image_blobs: Object.fromEntries([...image.blobs].map(([d, n]) => [short(d), n])),
    quiet_before: q,
    direct_s: direct,
    concurrent_direct_s: concurrentDirect,
    herd_pull_s: herd,
    upstream: use,
    counters: c,
    counters_per_node: counters.perNode,
    counters_absent: counters.absent,
    warnings,
    cpu_s: { ...cpuUsed, wall: herdWall, cores: cpus().length },
    peak_rss_bytes: rss
  }
  const imageLabel = `${image.blobs.size - 1}x${cfg.layerBytes / MiB} MiB`
  rows.push({
    metric: `${s.label}, ${imageLabel}: upstream blob bytes`,
    unit: 'MB',
    value: use.blobBytes / MB,
    baseline: image.bytes / MB,
    ratio: bytesRatio,
    target: '<= 1.10',
    pass: bytesRatio <= 1.1,
    digits: 1,
    note:
      `${s.setup}; blob GETs by digest: ${blobGetsText}; ${use.rangeGets} of them Range requests (counted whole), ${use.failedBlobGets} failed, ${use.blobHeads} HEADs; ` +
      `${
        use.writtenBytes === undefined
          ? 'bytes written not in the log tail'
          : `bytes written per the registry log: ${(use.writtenBytes / MB).toFixed(1)} MB`
      }; ` +
      `sidecar counters summed: ${countersText}; ${othersText}; ${spreadText}; baseline: the image's blobs (config + layers)`
  })
  rows.push({
    metric: `${s.label}: manifest GETs per digest (max)`,
    unit: 'count',
    value: maxManifestGets,
    baseline: s.nodes,
    ratio: maxManifestGets / s.nodes,
    target: 'value = 1',
    pass: maxManifestGets === 1,
    digits: 0,
    note: `manifest GETs: ${
      tally(use.manifestGets)
    } (a GET by tag counts for its digest); not counted: ${use.manifestHeadsByTag} HEADs by tag, ${use.manifestHeadsByDigest} HEADs by digest; other upstream requests: ${use.other}; baseline: the pulls`
  })
  rows.push({
    metric: `${s.label}: slowest pull`,
    unit: 's',
    value: slowest,
    baseline: lone,
    ratio: ratioOf(slowest, lone),
    target: '<= 1.30',
    pass: slowest / lone <= 1.3,
    digits: 2,
    note:
      `${s.nodes} skopeo pulls started at once, each through its own sidecar: ${
        spread(herd, 2)
      } s; the longest upstream blob GET meanwhile (registry's log): ${upstreamTime}; baseline: median of ${direct.length} lone skopeo pulls straight from the registry just before (${
        spread(direct, 2)
      } s); ${cpuText}` +
      (concurrentDirect === undefined
        ? ''
        : `; ${s.nodes} direct pulls at once (no sidecar) took up to ${Math.max(...concurrentDirect).toFixed(2)} s on this machine`)
  })
}

// ---------------------------------------------------------------------------------------
// Loopback swarms
// ---------------------------------------------------------------------------------------

/** `p2p-cache id --json` in `dir`: the node's identity, made before it starts. */
async function identity (dir: string, listen: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  const res = await runCli(['id', '--json'], { HOME: dir, CACHE_DIR: join(dir, 'data'), CACHE_LISTEN_ADDRS: listen })
  if (res.code !== 0) throw new Error(`p2p-cache id --json in ${dir} exited ${res.code}: ${res.stderr.trim()}`)
  const out = JSON.parse(res.stdout) as { addrs?: unknown }
  const addr = Array.isArray(out.addrs)
    ? out.addrs.find((a): a is string => typeof a === 'string' && a.startsWith(`${listen}/p2p/`))
    : undefined
  if (addr === undefined) throw new Error(`p2p-cache id --json in ${dir} printed no ${listen}/p2p/<id> address: ${res.stdout.trim()}`)
  return addr
}

async function inBatches<T, R> (items: T[], size: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(fn)))
  return out
}

async function loopbackHerd (ctx: P2pCtx, cfg: HerdConfig, n: number): Promise<void> {
  await withSectionCleanup(ctx, `herd ${n}`, async local => {
    const { work, registry, log } = ctx
    const label = `herd, ${n} sidecars on loopback`
    const image = await pushImage(work, registry, `bench/herd-${n}-${randomBytes(3).toString('hex')}`, cfg)
    log(`${label}: image ${image.repo}:${TAG} pushed (${(image.bytes / MB).toFixed(1)} MB in ${image.blobs.size} blobs)`)

    const root = await mkdtemp(join(work, `herd-${n}-`))
    local.add('herd node dirs', () => rm(root, { recursive: true, force: true }))
    const names = Array.from({ length: n }, (_, i) => `n${String(i).padStart(2, '0')}`)
    const ports = await Promise.all(names.map(() => freePort()))
    const t0 = performance.now()
    const addrs = await inBatches(
      names.map((name, i) => ({ name, port: ports[i] as number })),
      cfg.startBatch,
      x => identity(join(root, x.name), `/ip4/127.0.0.1/tcp/${x.port}`)
    )
    const nodes: P2pNode[] = []
    local.add('herd nodes', async () => {
      await Promise.all(nodes.map(x => x.stop()))
    })
    // Up to 20 nodes every node bootstraps to all; above, to n00 only (BENCH_HERD_BOOTSTRAP=all|first
    // overrides): 50 nodes dialling 49 each is a start-up storm of Noise handshakes on 2 cores.
    const toFirst = (process.env.BENCH_HERD_BOOTSTRAP ?? (n > 20 ? 'first' : 'all')) === 'first'
    const logDir = process.env.BENCH_HERD_LOG_DIR === undefined ? undefined : join(process.env.BENCH_HERD_LOG_DIR, `loopback-${n}`)
    if (logDir !== undefined) await mkdir(logDir, { recursive: true })
    await startP2pNodes(n, cfg.startBatch, i => ({
      root,
      name: names[i] as string,
      upstreams: `${registry.host}=${registry.url}`,
      bootstrap: toFirst ? (i === 0 ? [] : addrs.slice(0, 1)) : addrs,
      p2pPort: ports[i] as number,
      // All at once on a small machine: more than the 30 s default, not less.
      readyTimeoutMs: 60_000,
      // Above 20 nodes (25 processes per core here), a sidecar that is not scheduled for 10 s
      // reads a client's request headers late and answers 408: a fleet never shares 2 cores so.
      env: {
        ...(n > 20 ? { CACHE_HTTP_HEADER_TIMEOUT: '60s' } : {}),
        ...(process.env.BENCH_HERD_LOG_LEVEL !== undefined ? { CACHE_LOG_LEVEL: process.env.BENCH_HERD_LOG_LEVEL } : {})
      },
      // BENCH_HERD_LOG_DIR keeps every sidecar's log, as on emulated hosts.
      ...(logDir !== undefined ? { logFile: join(logDir, `${names[i] as string}.log`) } : {})
    }), node => nodes.push(node))
    const startedS = (performance.now() - t0) / 1000
    let meshed = true
    const counts = async (): Promise<Array<{ peers: number, rt: number | undefined }>> =>
      await Promise.all(nodes.map(async x => {
        const i = await x.info()
        return { peers: i.peers.length, rt: i.routingTable }
      }))
    try {
      await waitFor(async () => (await counts()).every(c => c.peers >= n - 1 && (c.rt === undefined || c.rt >= n - 1)), {
        timeoutMs: MESH_TIMEOUT_MS,
        intervalMs: 100,
        what: `every one of ${n} sidecars connected to the others, with them in its routing table`
      })
    } catch {
      meshed = false
    }
    const mesh = await counts()
    const meshText = `peers ${spread(mesh.map(c => c.peers), 0)}, routing table ${spread(mesh.map(c => c.rt ?? NaN), 0)}`
    const setup = `${n} sidecars, each bootstrapped to ${toFirst ? 'n00 only' : 'all'}; started in ${startedS.toFixed(1)} s; ${
      meshed ? 'full mesh' : `NOT a full mesh after ${MESH_TIMEOUT_MS / 1000} s`
    } at ${((performance.now() - t0) / 1000).toFixed(1)} s (${meshText})`
    log(`${label}: ${setup}`)

    await measureHerd(
      work,
      {
        label,
        key: `herd_loopback_${n}`,
        nodes: n,
        image,
        log,
        direct: out => pullToLayout(registry.host, image.repo, TAG, out, { timeoutMs: cfg.requestTimeoutMs }).then(() => undefined),
        // N sidecars and N skopeo move N copies through this machine's cores: 10 s per node at least.
        viaNode: nodes.map(node => out =>
          pullToLayout(node.url.slice('http://'.length), image.repo, TAG, out, { timeoutMs: Math.max(cfg.requestTimeoutMs, n * 10_000) })
            .then(() => undefined)
        ),
        concurrentDirect: true,
        warmUp: true,
        upstream: fixtureLog(registry),
        stats: () => Promise.all(nodes.map(x => x.stats())),
        warnings: () => nodes.flatMap(x => x.warnings()),
        pids: nodes.map(x => x.pid),
        setup
      },
      cfg,
      ctx.rows,
      ctx.samples
    )
  })
}

// ---------------------------------------------------------------------------------------
// Emulated hosts: network namespaces, links shaped with tc tbf
// ---------------------------------------------------------------------------------------

const NET = '10.79.0'
const UPSTREAM_IP = `${NET}.100`
const UPSTREAM_PORT = 5000

/** skopeo inside `ns`, sandboxed as test/fixtures/skopeo.ts does it (no user config, no mirrors). */
async function nsPull (ns: Netns, work: string, host: string, repo: string, out: string, timeoutMs: number): Promise<void> {
  const sandbox = await mkdtemp(join(work, 'herd-skopeo-'))
  try {
    const policy = join(sandbox, 'policy.json')
    const conf = join(sandbox, 'registries.conf')
    const auth = join(sandbox, 'auth.json')
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }))
    await writeFile(conf, '')
    await writeFile(auth, '{"auths":{}}')
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: sandbox,
      XDG_RUNTIME_DIR: sandbox,
      XDG_CONFIG_HOME: join(sandbox, 'config'),
      REGISTRY_AUTH_FILE: auth,
      TMPDIR: sandbox
    }
    const r = await ns.run('skopeo', [
      '--policy',
      policy,
      '--registries-conf',
      conf,
      '--registries.d',
      join(sandbox, 'registries.d'),
      '--tmpdir',
      sandbox,
      'copy',
      '--retry-times',
      '0',
      '--src-tls-verify=false',
      '--src-no-creds',
      `docker://${host}/${repo}:${TAG}`,
      `oci:${out}:${TAG}`
    ], { env, timeoutMs })
    if (r.code !== 0) throw new Error(`skopeo copy docker://${host}/${repo}:${TAG} in ${ns.name}: exit ${r.code}\n${r.stderr.trim()}`)
  } finally {
    await rm(sandbox, { recursive: true, force: true })
  }
}

/**
 * docker-registry inside `ns` on 0.0.0.0:5000 (the namespace's own interfaces), serving the
 * fixture registry's storage directory (read only here: images are pushed to the fixture), its
 * log parsed with the fixture's parser.
 */
async function startNsRegistry (ns: Netns, work: string, dataDir: string, local: Cleanup): Promise<UpstreamLog> {
  const config = join(work, 'herd-registry.yml')
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      '  formatter: json',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${dataDir}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      '    readonly:',
      '      enabled: true',
      'http:',
      `  addr: 0.0.0.0:${UPSTREAM_PORT}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      ''
    ].join('\n')
  )
  let logged: LoggedRequest[] = []
  const marks = new Set<string>()
  const proc = ns.spawn(REGISTRY_BIN, ['serve', config], {
    onLine: line => {
      const r = parseRequestLine(line)
      if (r === undefined) return
      const m = /[?&]herd-settle=(\w+)/.exec(r.path)
      if (m !== null) {
        marks.add(m[1] as string)
        return
      }
      logged.push({ ...r, ...logFields(line) })
    }
  })
  local.add('netns registry', () => proc.stop(5_000))
  const probe = async (query: string): Promise<number> => {
    const r = await ns.run('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--max-time',
      '5',
      `http://127.0.0.1:${UPSTREAM_PORT}/v2/${query}`
    ], { timeoutMs: 7_000 })
    return Number(r.stdout)
  }
  await waitFor(async () => {
    if (!proc.isRunning()) throw new Error(`docker-registry in ${ns.name} exited: ${proc.tail(10)}`)
    return (await probe('?herd-ready')) === 200
  }, { timeoutMs: 20_000, intervalMs: 100, what: `docker-registry ready in ${ns.name}` })
  const settled = async (): Promise<void> => {
    const id = randomBytes(6).toString('hex')
    await probe(`?herd-settle=${id}`)
    await waitFor(() => marks.delete(id), { timeoutMs: 10_000, intervalMs: 5, what: `registry log line of settle probe ${id}` })
  }
  return {
    mark: async () => {
      await settled()
      logged = []
    },
    collect: async () => {
      await settled()
      const requests = logged.filter(r => !r.path.includes('herd-ready'))
      return { requests, writtenKnown: requests.every(r => r.written !== undefined) }
    }
  }
}

/** GET /api/p2p of a sidecar inside a namespace: peers and routing table size. */
async function nsMesh (ns: Netns, url: string): Promise<{ peers: number, rt: number | undefined }> {
  const r = await ns.run('curl', ['-sS', '--max-time', '5', `${url}/api/p2p`], { timeoutMs: 7_000 })
  if (r.code !== 0) throw new Error(`curl ${url}/api/p2p in ${ns.name}: exit ${r.code} ${r.stderr.trim()}`)
  const o = JSON.parse(r.stdout) as Record<string, unknown>
  return {
    peers: Array.isArray(o['peers']) ? o['peers'].length : 0,
    rt: typeof o['routingTable'] === 'number' ? o['routingTable'] : undefined
  }
}

/** Why the emulated-hosts herd can't run here, or undefined. */
async function netnsSkipReason (): Promise<string | undefined> {
  const why = await netnsUnavailable()
  if (why !== undefined) return why
  for (const tool of ['tc', 'curl']) {
    const r = await run(tool, ['-V'], { timeoutMs: 5_000 })
    if (r.code !== 0) return `${tool} is not usable: ${r.stderr.trim() || `exit ${r.code}`}`
  }
  return undefined
}

async function netnsHerd (ctx: P2pCtx, cfg: HerdConfig, n: number): Promise<void> {
  const label = `herd, ${n} hosts @ ${cfg.netnsRateMbit} Mbit (netns${cfg.netnsBootstrapAll ? '' : ', bootstrapped to host 1'})`
  const skip = await netnsSkipReason()
  if (skip !== undefined) {
    ctx.log(`${label}: skipped: ${skip}`)
    ctx.samples['herd_netns_skipped'] = skip
    return
  }
  await withSectionCleanup(ctx, 'herd netns', async local => {
    const { work, registry, log } = ctx
    const image = await pushImage(work, registry, `bench/herd-netns-${randomBytes(3).toString('hex')}`, cfg)
    log(`${label}: image ${image.repo}:${TAG} pushed (${(image.bytes / MB).toFixed(1)} MB in ${image.blobs.size} blobs)`)

    // lan: bridge br0 with one port per host and one for the upstream; every link shaped to
    // the rate both ways (tbf on the host's eth0 and on its bridge port).
    const t0 = performance.now()
    const made: Netns[] = []
    local.add('herd namespaces', async () => {
      for (const ns of made.reverse()) await ns.destroy()
    })
    const create = async (prefix: string): Promise<Netns> => {
      const ns = await Netns.create(prefix)
      made.push(ns)
      return ns
    }
    const lan = await create('p2pc-hlan')
    const up = await create('p2pc-hup')
    const hosts: Netns[] = []
    for (let k = 1; k <= n; k++) hosts.push(await create(`p2pc-h${k}`))
    const tbf = ['root', 'tbf', 'rate', `${cfg.netnsRateMbit}mbit`, 'burst', '256kb', 'latency', '50ms']
    const link = async (port: string, ns: Netns, addr: string): Promise<void> => {
      await veth(lan, port, undefined, ns, 'eth0', `${addr}/24`)
      await lan.must('tc', ['qdisc', 'add', 'dev', port, ...tbf])
      await ns.must('tc', ['qdisc', 'add', 'dev', 'eth0', ...tbf])
    }
    await link('pup', up, UPSTREAM_IP)
    for (const [k, ns] of hosts.entries()) await link(`ph${k + 1}`, ns, `${NET}.${k + 1}`)
    await bridge(lan, 'br0', undefined, ['pup', ...hosts.map((_, k) => `ph${k + 1}`)])

    const upstream = await startNsRegistry(up, work, registry.dataDir, local)
    const upstreamHost = `${UPSTREAM_IP}:${UPSTREAM_PORT}`

    const root = await mkdtemp(join(work, 'herd-netns-'))
    local.add('herd netns node dirs', () => rm(root, { recursive: true, force: true }))
    const listen = hosts.map((_, k) => `/ip4/${NET}.${k + 1}/tcp/9000`)
    const addrs = await Promise.all(hosts.map((_, k) => identity(join(root, `h${k + 1}`), listen[k] as string)))
    const sidecars: SidecarProcess[] = []
    local.add('herd netns sidecars', async () => {
      await Promise.all(sidecars.map(x => x.stop()))
    })
    await Promise.all(hosts.map(async (ns, k) => {
      sidecars[k] = await startSidecar(
        {
          CACHE_ENABLE_P2P: 'true',
          CACHE_LISTEN_ADDRS: listen[k],
          CACHE_BOOTSTRAP_PEERS: cfg.netnsBootstrapAll ? addrs.join(',') : k === 0 ? '' : addrs[0] as string,
          CACHE_REGISTRY_UPSTREAMS: `${upstreamHost}=http://${upstreamHost}`,
          CACHE_LOG_LEVEL: process.env.BENCH_HERD_LOG_LEVEL ?? 'warn',
          CACHE_PEER_LOOKUP_TIMEOUT: '2s',
          CACHE_MAX_SIZE: '20GB'
        },
        { dir: join(root, `h${k + 1}`), netns: ns, nodeArgs: cpuProfileArgs() }
      )
    }))
    // BENCH_HERD_LOG_DIR keeps every sidecar's log (with BENCH_HERD_LOG_LEVEL=info: its claims, joins and fetches).
    const logDir = process.env.BENCH_HERD_LOG_DIR
    if (logDir !== undefined) {
      local.add('herd netns logs', async () => {
        await mkdir(join(logDir, `netns-${n}`), { recursive: true })
        for (const [k, x] of sidecars.entries()) await writeFile(join(logDir, `netns-${n}`, `h${k + 1}.log`), x.logs().join('\n') + '\n')
      })
    }
    const startedS = (performance.now() - t0) / 1000
    const counts = async (): Promise<Array<{ peers: number, rt: number | undefined }>> =>
      await Promise.all(sidecars.map((x, k) => nsMesh(hosts[k] as Netns, x.url)))
    let meshed = true
    try {
      await waitFor(async () => (await counts()).every(c => c.peers >= n - 1 && (c.rt === undefined || c.rt >= n - 1)), {
        timeoutMs: MESH_TIMEOUT_MS,
        intervalMs: 200,
        what: `every one of ${n} hosts' sidecars connected to the others, with them in its routing table`
      })
    } catch {
      meshed = false
    }
    const mesh = await counts()
    const setup =
      `${n} hosts and the registry in network namespaces on one bridge, each link tbf ${cfg.netnsRateMbit} Mbit both ways; sidecars bootstrapped to ${
        cfg.netnsBootstrapAll ? 'all' : 'host 1'
      }, ` +
      `up in ${startedS.toFixed(1)} s; ${meshed ? 'full mesh' : `NOT a full mesh after ${MESH_TIMEOUT_MS / 1000} s`} (peers ${
        spread(mesh.map(c => c.peers), 0)
      }, routing table ${spread(mesh.map(c => c.rt ?? NaN), 0)})`
    log(`${label}: ${setup}`)

    const first = hosts[0] as Netns
    await measureHerd(
      work,
      {
        label,
        key: `herd_netns_${n}`,
        nodes: n,
        image,
        log,
        direct: out => nsPull(first, work, upstreamHost, image.repo, out, cfg.requestTimeoutMs),
        viaNode: sidecars.map((x, k) => out => nsPull(hosts[k] as Netns, work, x.host, image.repo, out, cfg.requestTimeoutMs)),
        concurrentDirect: false,
        // The link, not the page cache, bounds these pulls; skopeo is warm after a loopback herd.
        warmUp: cfg.nodeCounts.length === 0,
        upstream,
        stats: () => Promise.all(sidecars.map(x => x.stats())),
        warnings: () => sidecars.flatMap(x => warnLines(x.logs())),
        pids: sidecars.map(x => x.proc.child.pid ?? -1).filter(pid => pid > 0),
        setup
      },
      cfg,
      ctx.rows,
      ctx.samples
    )
  })
}

// ---------------------------------------------------------------------------------------

/** Every herd in turn; one that fails is a FAIL row (its processes already torn down) and the next one runs. */
export async function herd (ctx: P2pCtx, cfg: HerdConfig): Promise<void> {
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn()
    } catch (err) {
      if (ctx.cleanup.started) throw err
      const msg = err instanceof Error ? err.message : String(err)
      ctx.log(`${what}: FAILED: ${err instanceof Error ? err.stack ?? msg : msg}`)
      ctx.samples[`${what}_error`] = msg
      ctx.rows.push({
        metric: `${what}: failed`,
        unit: '-',
        value: NaN,
        baseline: undefined,
        ratio: undefined,
        target: 'completes',
        pass: false,
        digits: 0,
        note: msg
      })
    }
  }
  for (const n of cfg.nodeCounts) await attempt(`herd, ${n} sidecars on loopback`, () => loopbackHerd(ctx, cfg, n))
  if (cfg.netns) { for (const n of cfg.netnsHosts) await attempt(`herd, ${n} hosts (netns)`, () => netnsHerd(ctx, cfg, n)) }
  else ctx.log('herd, emulated hosts: skipped (BENCH_HERD_NETNS=0)')
}
