/**
 * `npm run bench`: the docs/design.md §6 numbers that this build can measure, each as a ratio
 * against a baseline measured in the same run on the same machine.
 *
 *   1. local-hit throughput of a large blob: sidecar (X-Cache: HIT) vs a plain node:http file
 *      server process serving the same bytes, client hashing and not hashing;
 *   2. peak RSS of the sidecar while serving the large blob to several clients at once;
 *   3. N concurrent GETs of one cold blob: upstream GETs and upstream bytes / blob size;
 *   4. skopeo pull through the mirror (cold and warm) vs straight from the registry;
 *   5. peer-to-peer transfer of a large blob between two sidecars vs the plain file server,
 *      and the RSS of both nodes meanwhile (p2p.ts);
 *   6. time to first byte of a peer hit on a 20-node swarm, p50 and p95 (p2p.ts);
 *   7. HTTP API cache: p50/p99 latency and requests/s of X-Cache: HIT answers under concurrent
 *      load (autocannon), vs the same load straight on the fake api.github.com;
 *   8. the same for authenticated GETs answered REVALIDATED (a conditional request upstream);
 *   9. per-job API replays: J jobs, each with a new repository-scoped token, making the same 30
 *      GETs; rate-limit units spent through the sidecar (with a fleet credential, and without)
 *      vs straight to the fake (api.ts);
 *  10. peer transfer of a large blob A -> B between two emulated hosts in network namespaces on
 *      one bridge, each link shaped to 1 Gbit both ways with tc tbf, vs plain HTTP over the same
 *      link; B's bytes over the data channel / bytes from peers in the note (p2p-link.ts; as root
 *      where namespaces and tc tbf work, otherwise skipped with the reason printed);
 *  11. a herd (herd.ts): N sidecar processes on loopback (N = 3, 5, 10; quick: 3, 5), each N its
 *      own swarm bootstrapped to all and its own cold image (3 layers, ~75 MiB; quick ~24 MiB),
 *      pulled by N skopeo at the same moment, each through its own sidecar. From the registry's
 *      log: upstream blob bytes / image size (goal <= 1.1; GETs per blob digest x blob size,
 *      Range requests noted) and the most manifest GETs of one digest (goal 1; HEADs by tag do
 *      not count); and the slowest pull / a lone skopeo pull straight from the registry in the
 *      same run (goal <= 1.3). The sidecars' claims_won, claims_joined, peer_inflight_joins and
 *      upstream_fetches_saved go into the notes. As root, where network namespaces can be made,
 *      the same for emulated hosts (N = 3, 10, 20; quick: 3; BENCH_HERD_NETNS_HOSTS overrides)
 *      and the registry on one bridge, every link shaped to 100 Mbit with tc tbf
 *      (BENCH_HERD_NETNS_MBIT), every sidecar bootstrapped to host 1 only, as runners sharing one
 *      CACHE_BOOTSTRAP_PEERS are (BENCH_HERD_NETNS_BOOTSTRAP=all: to all); BENCH_HERD_NETNS=0
 *      skips them, otherwise skipped with the reason printed. BENCH_HERD_LOG_LEVEL=info and
 *      BENCH_HERD_LOG_DIR=<dir> keep every sidecar's log. BENCH_HERD_NODES (e.g. 3,5 or 50) sets the loopback herd sizes; above 20 nodes each bootstraps to the first only (BENCH_HERD_BOOTSTRAP=all|first).
 *  12. the forward proxy (proxy.ts, issue 24): one image pulled by skopeo on an emulated runner
 *      over a 200 Mbit link directly from `ghcr.io` (a TLS registry under that name), through the
 *      mirror and through the proxy, cold and warm, and the sidecar's CPU per GiB through the
 *      proxy's TLS vs the mirror's plain HTTP; skipped with the reason where netns/tbf can't be used.
 *  13. the local namespace (push.ts, issue 25): a 256 MiB image pushed on one emulated runner
 *      host and pulled on another over 200 Mbit links, through the Debian docker-registry on the
 *      pusher's loopback and through the swarm (CACHE_LOCAL_REPLICAS=1, the pull from peers);
 *      skipped with the reason where netns/tbf can't be used.
 *  14. the Actions cache (actions-cache.ts, issue 26): a 256 MiB directory saved by
 *      @actions/cache through one sidecar and restored through another, against cp -r, and its
 *      archive through the cache service against PUT + GET on node:http, on loopback.
 *  15. the reliability campaign (reliability.ts, issue 16): a churn soak of 5 sidecars and the
 *      registry with SIGKILLs and upstream outages (BENCH_CHURN_MS, default 300 s, quick 60 s),
 *      1,000 held connections and 20 stalled readers against one sidecar, and a long fuzzing
 *      run; corrupt bytes served, disallowed failures, crashes and fuzz failures must be 0.
 *  16. the bucket tier (s3.ts, issue 27): on loopback, with s3rver as the bucket, a cold skopeo
 *      pull of a 256 MiB image (BENCH_S3_MIB; quick 64) on a fresh node from the bucket, filled
 *      by a node since destroyed, vs on a fresh node from the registry (BENCH_S3_ROUNDS rounds:
 *      3, quick 2; goal <= 1.3), and the filling node's CPU per GiB uploaded to the bucket.
 *
 * BENCH_QUICK=1 runs a smaller version (~1 min). BENCH_RSS_CLIENTS overrides the client count
 * of the RSS row; BENCH_FS_CHUNK_KIB sets the baseline file server's read size (default: Node's
 * 64 KiB), for experiments. BENCH_SECTIONS (comma separated, default all:
 * local,cold,pull,p2p,link,swarm,herd,api,proxy,push,actions,s3,reliability) runs only some sections; BENCH_SWARM_NODES changes the swarm size
 * and BENCH_SEED repeats a swarm run's random choices. Results also go to .bench/results.json.
 *
 * Throughput figures are wall-clock: on a shared or busy machine they move with its load, which
 * is printed with the table. Runs of a measurement and its baseline are interleaved so that load
 * affects both alike; compare ratios, not absolute numbers, between runs.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { startRegistry, type Registry } from '../../test/fixtures/registry.js'
import { startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { buildImage, type ImageDescription } from '../../test/fixtures/oci-image.js'
import { pullToLayout, pushLayout } from '../../test/fixtures/skopeo.js'
import { waitFor } from '../../test/fixtures/wait.js'
import { Cleanup, guard } from './cleanup.js'
import { fetchBlob, requestJson, uploadBlob, type FetchResult } from './http-client.js'
import { gcDelta, mbps, randomBlobFile, sidecarGc, spread } from './common.js'
import { cpuSeconds, memory, peakRssDuring, startFileServer, type FileServer } from './proc.js'
import { formatTable, median, MB, MiB, ratioOf, type Row } from './report.js'
import { p2pConfig, p2pThroughput, swarmTtfb } from './p2p.js'
import { apiCache, apiConfig } from './api.js'
import { proxyBench, proxyBenchConfig } from './proxy.js'
import { pushBench, pushBenchConfig } from './push.js'
import { actionsCacheBench, actionsBenchConfig } from './actions-cache.js'
import { s3Bench, s3BenchConfig } from './s3.js'
import { herd, herdConfig } from './herd.js'
import { linkConfig, p2pLink } from './p2p-link.js'
import { churnRows, fuzzRows, overloadRows, reliabilityConfig } from './reliability.js'

const QUICK = process.env.BENCH_QUICK === '1'

const CFG = {
  mode: QUICK ? 'quick' : 'full',
  /** Row 1 and 2: the blob served from the local store. */
  largeBytes: (QUICK ? 64 : 256) * MiB,
  /** Cold single-client fetches of it (store cleared before each), each paired with a direct GET. */
  coldSingleRuns: QUICK ? 3 : 5,
  hitRuns: QUICK ? 5 : 9,
  rssClients: Number(process.env.BENCH_RSS_CLIENTS ?? (QUICK ? '4' : '10')),
  /** Row 3. */
  coldBytes: (QUICK ? 16 : 64) * MiB,
  coldClients: 8,
  coldRuns: 3,
  /** Row 4: image of pullLayers random layers of pullLayerBytes each (before gzip). */
  pullLayers: 4,
  pullLayerBytes: (QUICK ? 8 : 16) * MiB,
  pullRuns: QUICK ? 5 : 7,
  /** Hard limit for the whole run, setup and teardown included. */
  deadlineMs: (QUICK ? 240 : 660) * 1000,
  requestTimeoutMs: 120_000
}
const P2P_CFG = p2pConfig(QUICK, CFG.requestTimeoutMs)
const API_CFG = apiConfig(QUICK)
const PROXY_CFG = proxyBenchConfig(QUICK)
const PUSH_CFG = pushBenchConfig(QUICK)
const ACTIONS_CFG = actionsBenchConfig(QUICK)
const S3_CFG = s3BenchConfig(QUICK, CFG.requestTimeoutMs)
const HERD_CFG = herdConfig(QUICK, CFG.requestTimeoutMs)
const RELIABILITY_CFG = reliabilityConfig(QUICK)
const LINK_CFG = linkConfig(QUICK, CFG.requestTimeoutMs)

const ALL_SECTIONS = [
  'local',
  'cold',
  'pull',
  'p2p',
  'link',
  'swarm',
  'herd',
  'api',
  'proxy',
  'push',
  'actions',
  's3',
  'reliability'
] as const
type Section = typeof ALL_SECTIONS[number]
const SECTIONS = new Set<string>((process.env.BENCH_SECTIONS ?? ALL_SECTIONS.join(',')).split(',').map(x => x.trim()).filter(Boolean))
for (const s of SECTIONS) {
  if (!(ALL_SECTIONS as readonly string[]).includes(s)) {
    throw new Error(`BENCH_SECTIONS: unknown section "${s}"; known: ${ALL_SECTIONS.join(', ')}`)
  }
}
const runs = (s: Section): boolean => SECTIONS.has(s)
// The API section's share of the time budget (~50 s full, ~25 s quick, plus slack).
if (runs('api')) CFG.deadlineMs += (QUICK ? 60 : 120) * 1000
if (runs('proxy')) CFG.deadlineMs += (QUICK ? 120 : 300) * 1000
if (runs('push')) CFG.deadlineMs += (QUICK ? 120 : 300) * 1000
if (runs('actions')) CFG.deadlineMs += (QUICK ? 90 : 240) * 1000
// The s3 section's: set-up, the fill, and 2 pulls a round, ~20 s per 256 MiB pulled on 2 cores, plus slack.
if (runs('s3')) CFG.deadlineMs += Math.round(120 + (2 + 2 * S3_CFG.rounds) * S3_CFG.layers * S3_CFG.layerBytes / (256 * MiB) * 20) * 1000
// The herd section's (~3 min full, ~1 min quick, plus slack).
if (runs('herd')) CFG.deadlineMs += (QUICK ? 120 : 300) * 1000
// Loopback herds above 10 nodes: start-up and the pulls take about 12 s per node on 2 cores.
if (runs('herd')) CFG.deadlineMs += HERD_CFG.nodeCounts.reduce((t, n) => t + Math.max(0, n - 10) * 12, 0) * 1000
// Each emulated-hosts herd: set-up, a lone pull, then N pulls sharing the LAN (a 20-host herd once took ~90 s).
if (runs('herd') && HERD_CFG.netns) CFG.deadlineMs += HERD_CFG.netnsHosts.reduce((t, n) => t + 30 + 8 * n, 0) * 1000
// The link section's (~15 s quick, ~45 s full: setup, and 1 + runs transfers each way at ~117 MB/s).
if (runs('link')) CFG.deadlineMs += (QUICK ? 60 : 120) * 1000
// The reliability campaign's: the churn soak plus ~2 min of set-up and checks, ~1 min of overload, the fuzzing run.
if (runs('reliability')) CFG.deadlineMs += RELIABILITY_CFG.churnMs + 360 * 1000

const BLOB_REPO = 'bench/blobs'
const IMAGE_REPO = 'bench/image'
const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')

const t0 = performance.now()
function log (msg: string): void {
  console.error(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`)
}

interface Ctx {
  work: string
  registry: Registry
  sidecar: SidecarProcess
  sidecarPid: number
  cleanup: Cleanup
  rows: Row[]
  samples: Record<string, unknown>
}

// ---------------------------------------------------------------------------------------
// 1 + 2. Local hits of a large blob, and RSS under concurrent clients
// ---------------------------------------------------------------------------------------

async function localHits (ctx: Ctx): Promise<void> {
  const { work, registry, sidecar, cleanup, rows } = ctx
  const sizeLabel = `${CFG.largeBytes / MiB} MiB`
  log(`local hit: writing a ${sizeLabel} random blob and pushing it to the registry`)
  const blob = await randomBlobFile(work, 'large.bin', CFG.largeBytes)
  await uploadBlob(registry.url, BLOB_REPO, blob.path, blob.size, blob.digest, CFG.requestTimeoutMs)

  const chunkKiB = process.env.BENCH_FS_CHUNK_KIB
  const fileServer: FileServer = await startFileServer(blob.path, chunkKiB === undefined ? {} : { BENCH_FS_CHUNK_KIB: chunkKiB })
  cleanup.add('file server', fileServer.stop)
  const sidecarUrl = `${sidecar.url}/v2/${BLOB_REPO}/blobs/${blob.digest}`
  const baseUrl = `${fileServer.url}/large.bin`
  const get = (url: string, hash: boolean): Promise<FetchResult> =>
    fetchBlob(url, { hash, timeoutMs: CFG.requestTimeoutMs, ...(hash ? { expectDigest: blob.digest } : {}) })

  // Cold misses, one client: the store cleared before each, the GET through the sidecar paired
  // with the same GET straight from the registry, who goes first alternating. Each run ends
  // once the sidecar committed the blob (its `stores` counter moved): the next DELETE must not
  // race the commit, and the last run leaves the blob stored for the local-hit rows below.
  const directUrl = `${registry.url}/v2/${BLOB_REPO}/blobs/${blob.digest}`
  const coldMiss = async (): Promise<FetchResult> => {
    await requestJson('DELETE', `${sidecar.url}/api/cache`)
    const stores = (await sidecar.stats())['stores'] ?? 0
    const r = await get(sidecarUrl, true)
    if (r.headers['x-cache'] !== 'MISS') {
      throw new Error(`expected X-Cache: MISS after DELETE /api/cache, got ${String(r.headers['x-cache'])}`)
    }
    await waitFor(async () => ((await sidecar.stats())['stores'] ?? 0) > stores, {
      timeoutMs: 30_000,
      intervalMs: 10,
      what: 'the sidecar to commit the blob'
    })
    return r
  }
  const misses: FetchResult[] = []
  const directs: FetchResult[] = []
  for (let i = 0; i < CFG.coldSingleRuns; i++) {
    if (i % 2 === 0) {
      misses.push(await coldMiss())
      directs.push(await get(directUrl, true))
    } else {
      directs.push(await get(directUrl, true))
      misses.push(await coldMiss())
    }
    const miss = misses[i] as FetchResult
    const direct = directs[i] as FetchResult
    log(
      `cold fetch run ${i + 1}/${CFG.coldSingleRuns}, 1 client: sidecar ${mbps(miss).toFixed(0)} MB/s (first byte ${
        miss.ttfbMs.toFixed(0)
      } ms, last byte held ${miss.lastByteWaitMs.toFixed(0)} ms for verify+commit), registry direct ${mbps(direct).toFixed(0)} MB/s`
    )
  }
  const missMbps = misses.map(mbps)
  const directMbps = directs.map(mbps)
  const coldValue = median(missMbps)
  const coldBaseline = median(directMbps)
  const coldRatio = ratioOf(coldValue, coldBaseline)
  log(
    `cold fetch, 1 client (${CFG.coldSingleRuns} runs): sidecar ${spread(missMbps, 0)} MB/s, median ${coldValue.toFixed(0)} (first byte ${
      median(misses.map(r => r.ttfbMs)).toFixed(0)
    } ms, last byte held ${median(misses.map(r => r.lastByteWaitMs)).toFixed(0)} ms for verify+commit, medians), registry direct ${
      spread(directMbps, 0)
    } MB/s, median ${coldBaseline.toFixed(0)}`
  )
  ctx.samples['cold_single'] = {
    sidecar_mbps: missMbps,
    direct_mbps: directMbps,
    sidecar_ttfb_ms: misses.map(r => r.ttfbMs),
    direct_ttfb_ms: directs.map(r => r.ttfbMs),
    sidecar_last_byte_wait_ms: misses.map(r => r.lastByteWaitMs)
  }
  rows.push({
    metric: `cold fetch ${sizeLabel}, 1 client, client sha256`,
    unit: 'MB/s',
    value: coldValue,
    baseline: coldBaseline,
    ratio: coldRatio,
    target: '>= 0.70',
    pass: coldRatio >= 0.7,
    digits: 0,
    note:
      `median of ${CFG.coldSingleRuns} runs, each: DELETE /api/cache, then one GET through the sidecar (X-Cache: MISS), paired with the same GET straight from the registry (the baseline), order alternating`
  })
  const hitOf = async (hash: boolean): Promise<FetchResult> => {
    const r = await get(sidecarUrl, hash)
    if (r.headers['x-cache'] !== 'HIT') throw new Error(`expected X-Cache: HIT from the sidecar, got ${String(r.headers['x-cache'])}`)
    return r
  }

  const cpu = { sidecar: 0, fileServer: 0, bytes: 0 }
  const gcStart = await sidecarGc(sidecar.url)
  for (const hash of [true, false]) {
    const label = hash ? 'client sha256' : 'no hash'
    // One untimed round each: JIT, page cache, first-connection costs.
    await hitOf(hash)
    await get(baseUrl, hash)
    const side: number[] = []
    const base: number[] = []
    const gcBefore = await sidecarGc(sidecar.url)
    const cpuSide = cpuSeconds(ctx.sidecarPid)
    const cpuBase = cpuSeconds(fileServer.pid)
    for (let i = 0; i < CFG.hitRuns; i++) {
      // Alternate who goes first so drift (thermal, page cache, GC) hits both alike.
      if (i % 2 === 0) {
        side.push(mbps(await hitOf(hash)))
        base.push(mbps(await get(baseUrl, hash)))
      } else {
        base.push(mbps(await get(baseUrl, hash)))
        side.push(mbps(await hitOf(hash)))
      }
    }
    cpu.sidecar += cpuSeconds(ctx.sidecarPid) - cpuSide
    cpu.fileServer += cpuSeconds(fileServer.pid) - cpuBase
    cpu.bytes += CFG.hitRuns * blob.size
    const value = median(side)
    const baseline = median(base)
    const gc = gcDelta(gcBefore, await sidecarGc(sidecar.url))
    log(
      `local hit (${label}): sidecar ${spread(side, 0)} MB/s, file server ${
        spread(base, 0)
      } MB/s; sidecar GC: ${gc.major} major of ${gc.all}, ${(gc.seconds * 1000).toFixed(0)} ms`
    )
    ctx.samples[`local_hit_${hash ? 'hash' : 'nohash'}`] = { sidecar_mbps: side, file_server_mbps: base }
    const ratio = ratioOf(value, baseline)
    rows.push({
      metric: `local hit ${sizeLabel}, ${label}`,
      unit: 'MB/s',
      value,
      baseline,
      ratio,
      target: '>= 0.80',
      pass: ratio >= 0.8,
      digits: 0
    })
  }

  const gib = cpu.bytes / (1024 * MiB)
  const gc = gcDelta(gcStart, await sidecarGc(sidecar.url))
  ctx.samples['local_hit_cpu'] = { sidecar_s: cpu.sidecar, file_server_s: cpu.fileServer, gib_each: gib, sidecar_gc: gc }
  rows.push({
    metric: 'local hit: server CPU per GiB served',
    unit: 's',
    value: cpu.sidecar / gib,
    baseline: cpu.fileServer / gib,
    ratio: ratioOf(cpu.sidecar, cpu.fileServer),
    target: '-',
    pass: undefined,
    digits: 3,
    note: `user+sys CPU of the server process over the local-hit runs (10 ms ticks); sidecar GC meanwhile: ${gc.major} major GCs (~${
      (gc.major / gib).toFixed(1)
    } per GiB served), ${(gc.seconds * 1000).toFixed(0)} ms in GC pauses`
  })

  // Peak RSS while several clients pull the large blob at once (no client hashing: the
  // clients read as fast as they can, which is the most the server has to keep up with).
  const n = CFG.rssClients
  const concurrent = async (url: string, pid: number): Promise<{ peak: number, before: number, mbps: number, hwmUsed: boolean }> => {
    const started = performance.now()
    const r = await peakRssDuring(pid, () => Promise.all(Array.from({ length: n }, () => get(url, false))))
    const seconds = (performance.now() - started) / 1000
    return { peak: r.peak, before: r.before, hwmUsed: r.hwmUsed, mbps: r.result.reduce((s, x) => s + x.bytes, 0) / MB / seconds }
  }
  await concurrent(sidecarUrl, ctx.sidecarPid) // warm-up: n connections at once, untimed
  const gcBefore = await sidecarGc(sidecar.url)
  const side = await concurrent(sidecarUrl, ctx.sidecarPid)
  const gcConc = gcDelta(gcBefore, await sidecarGc(sidecar.url))
  const base = await concurrent(baseUrl, fileServer.pid)
  log(
    `rss: sidecar ${(side.before / MB).toFixed(0)} -> peak ${(side.peak / MB).toFixed(0)} MB, file server ${
      (base.before / MB).toFixed(0)
    } -> peak ${(base.peak / MB).toFixed(0)} MB (VmHWM reset: ${
      side.hwmUsed ? 'yes' : 'no, sampled VmRSS only'
    }); sidecar GC: ${gcConc.major} major of ${gcConc.all}, ${(gcConc.seconds * 1000).toFixed(0)} ms`
  )
  ctx.samples['rss'] = { clients: n, sidecar: side, file_server: base, sidecar_after: memory(ctx.sidecarPid), sidecar_gc: gcConc }
  const tput = ratioOf(side.mbps, base.mbps)
  rows.push({
    metric: `local hit ${sizeLabel}, ${n} clients aggregate`,
    unit: 'MB/s',
    value: side.mbps,
    baseline: base.mbps,
    ratio: tput,
    target: '-',
    pass: undefined,
    digits: 0
  })
  rows.push({
    metric: `sidecar peak RSS, ${n} clients x ${sizeLabel}`,
    unit: 'MB',
    value: side.peak / MB,
    baseline: base.peak / MB,
    ratio: ratioOf(side.peak, base.peak),
    target: 'value < 200 MB',
    pass: side.peak / MB < 200,
    digits: 0,
    note: `RSS just before: sidecar ${(side.before / MB).toFixed(0)} MB, file server ${
      (base.before / MB).toFixed(0)
    } MB; baseline: the file server under the same load; docs/design.md §6: < 200 MB serving 1 GiB blobs to 10 clients`
  })
  await fileServer.stop()
}

// ---------------------------------------------------------------------------------------
// 3. Concurrent cold fetch of one blob
// ---------------------------------------------------------------------------------------

async function concurrentCold (ctx: Ctx): Promise<void> {
  const { work, registry, sidecar, rows } = ctx
  const n = CFG.coldClients
  const sizeLabel = `${CFG.coldBytes / MiB} MiB`
  const gets: number[] = []
  const byteRatios: number[] = []
  const mirrorSeconds: number[] = []
  const directSeconds: number[] = []
  for (let run = 0; run < CFG.coldRuns; run++) {
    // A new random blob each run: cold without clearing the store.
    const blob = await randomBlobFile(work, `cold-${run}.bin`, CFG.coldBytes)
    await uploadBlob(registry.url, BLOB_REPO, blob.path, blob.size, blob.digest, CFG.requestTimeoutMs)
    await rm(blob.path, { force: true })
    const opts = { hash: true, expectDigest: blob.digest, timeoutMs: CFG.requestTimeoutMs }
    await registry.settled()
    registry.clearRequests()
    const before = await sidecar.stats()
    let started = performance.now()
    const results = await Promise.all(
      Array.from({ length: n }, () => fetchBlob(`${sidecar.url}/v2/${BLOB_REPO}/blobs/${blob.digest}`, opts))
    )
    mirrorSeconds.push((performance.now() - started) / 1000)
    await registry.settled()
    gets.push(registry.count({ method: 'GET', pathIncludes: `/blobs/${blob.digest}` }))
    const after = await sidecar.stats()
    const upstreamBytes = (after['bytes_from_upstream'] ?? 0) - (before['bytes_from_upstream'] ?? 0)
    byteRatios.push(upstreamBytes / blob.size)
    const misses = results.filter(r => r.headers['x-cache'] === 'MISS').length

    started = performance.now()
    await Promise.all(Array.from({ length: n }, () => fetchBlob(`${registry.url}/v2/${BLOB_REPO}/blobs/${blob.digest}`, opts)))
    directSeconds.push((performance.now() - started) / 1000)
    log(
      `concurrent cold run ${run + 1}/${CFG.coldRuns}: ${n} GETs (${misses} MISS), upstream GETs ${gets[run] ?? '?'}, upstream bytes ${
        (upstreamBytes / blob.size).toFixed(3)
      } x blob, ${mirrorSeconds[run]?.toFixed(3) ?? '?'} s vs ${directSeconds[run]?.toFixed(3) ?? '?'} s direct`
    )
  }
  ctx.samples['concurrent_cold'] = {
    clients: n,
    upstream_gets: gets,
    upstream_byte_ratio: byteRatios,
    mirror_s: mirrorSeconds,
    direct_s: directSeconds
  }
  const worstGets = Math.max(...gets)
  const worstBytes = Math.max(...byteRatios)
  rows.push({
    metric: `cold ${sizeLabel} x${n} concurrent: upstream GETs (worst of ${CFG.coldRuns})`,
    unit: 'count',
    value: worstGets,
    baseline: n,
    ratio: worstGets / n,
    target: 'value = 1',
    pass: worstGets === 1,
    digits: 0,
    note: 'baseline: client GETs'
  })
  rows.push({
    metric: `cold ${sizeLabel} x${n} concurrent: upstream bytes (worst of ${CFG.coldRuns})`,
    unit: 'MB',
    value: worstBytes * CFG.coldBytes / MB,
    baseline: CFG.coldBytes / MB,
    ratio: worstBytes,
    target: '<= 1.10',
    pass: worstBytes <= 1.1,
    digits: 1,
    note: 'baseline: blob size'
  })
  const mirror = median(mirrorSeconds)
  const direct = median(directSeconds)
  rows.push({
    metric: `cold ${sizeLabel} x${n} concurrent: wall time`,
    unit: 's',
    value: mirror,
    baseline: direct,
    ratio: ratioOf(mirror, direct),
    target: '-',
    pass: undefined,
    digits: 3,
    note: `baseline: ${n} concurrent GETs straight from the registry`
  })
}

// ---------------------------------------------------------------------------------------
// 4. skopeo pulls: mirror (cold, warm) vs registry
// ---------------------------------------------------------------------------------------

async function checkLayout (out: string, image: ImageDescription): Promise<void> {
  const got = new Set((await readdir(join(out, 'blobs', 'sha256'))).map(h => `sha256:${h}`))
  const missing = image.allBlobDigests.filter(d => !got.has(d))
  if (missing.length > 0) throw new Error(`pulled layout ${out} lacks ${missing.join(', ')}`)
}

async function pulls (ctx: Ctx): Promise<void> {
  const { work, registry, sidecar, rows } = ctx
  const layerLabel = `${CFG.pullLayers}x${CFG.pullLayerBytes / MiB} MiB`
  log(`pull: building and pushing an image of ${layerLabel} layers`)
  const layoutDir = join(work, 'image')
  const image = await buildImage(layoutDir, { tag: 'v1', layers: CFG.pullLayers, layerSize: CFG.pullLayerBytes })
  await pushLayout(layoutDir, 'v1', registry.host, IMAGE_REPO, { timeoutMs: CFG.requestTimeoutMs })
  await rm(layoutDir, { recursive: true, force: true })
  const blobCount = 1 + image.layers.length // config + layers; the manifest is not a blob GET

  const pull = async (host: string): Promise<{ seconds: number, upstreamBlobGets: number }> => {
    const out = await mkdtemp(join(work, 'pull-'))
    try {
      await registry.settled()
      registry.clearRequests()
      const started = performance.now()
      await pullToLayout(host, IMAGE_REPO, 'v1', out, { timeoutMs: CFG.requestTimeoutMs })
      const seconds = (performance.now() - started) / 1000
      await registry.settled()
      const upstreamBlobGets = registry.count({ kind: 'blob', method: 'GET' })
      await checkLayout(out, image)
      return { seconds, upstreamBlobGets }
    } finally {
      await rm(out, { recursive: true, force: true })
    }
  }
  const clear = async (): Promise<void> => {
    await requestJson('DELETE', `${sidecar.url}/api/cache`)
  }

  const direct: number[] = []
  const cold: number[] = []
  const warm: number[] = []
  const anomalies: string[] = []
  const mirrorPair = async (): Promise<void> => {
    await clear()
    const c = await pull(sidecar.host)
    if (c.upstreamBlobGets !== blobCount) anomalies.push(`cold pull fetched ${c.upstreamBlobGets} blobs upstream, expected ${blobCount}`)
    const w = await pull(sidecar.host)
    if (w.upstreamBlobGets !== 0) anomalies.push(`warm pull fetched ${w.upstreamBlobGets} blobs upstream, expected 0`)
    cold.push(c.seconds)
    warm.push(w.seconds)
  }
  // Untimed round: skopeo and the sidecar's code paths warmed once.
  await pull(registry.host)
  await clear()
  await pull(sidecar.host)
  for (let i = 0; i < CFG.pullRuns; i++) {
    if (i % 2 === 0) {
      direct.push((await pull(registry.host)).seconds)
      await mirrorPair()
    } else {
      await mirrorPair()
      direct.push((await pull(registry.host)).seconds)
    }
    log(
      `pull run ${i + 1}/${CFG.pullRuns}: direct ${direct[i]?.toFixed(3) ?? '?'} s, mirror cold ${cold[i]?.toFixed(3) ?? '?'} s, warm ${
        warm[i]?.toFixed(3) ?? '?'
      } s`
    )
  }
  for (const a of new Set(anomalies)) log(`pull: WARNING ${a}`)
  ctx.samples['pull'] = { direct_s: direct, cold_s: cold, warm_s: warm, anomalies }
  const d = median(direct)
  for (const [name, xs] of [['cold', cold], ['warm', warm]] as const) {
    const v = median(xs)
    rows.push({
      metric: `skopeo pull ${layerLabel}, mirror ${name} vs direct`,
      unit: 's',
      value: v,
      baseline: d,
      ratio: ratioOf(v, d),
      target: '-',
      pass: undefined,
      digits: 3,
      note: 'ratio = mirror time / direct time (lower is better)'
    })
  }
}

// ---------------------------------------------------------------------------------------

async function main (): Promise<number> {
  const cleanup = new Cleanup()
  const disarm = guard(cleanup, CFG.deadlineMs)
  const rows: Row[] = []
  const samples: Record<string, unknown> = {}
  const startedAt = new Date().toISOString()
  const loadStart = loadavg()
  log(
    `p2p-cache bench (${CFG.mode}), node ${process.version}, ${cpus().length} cpus, load average ${
      loadStart.map(x => x.toFixed(2)).join(' ')
    }`
  )
  if ((loadStart[0] ?? 0) > cpus().length * 0.5) log('WARNING: the machine is busy; wall-clock figures will be noisy')
  try {
    const work = await mkdtemp(join(tmpdir(), 'p2p-cache-bench-'))
    cleanup.add('work dir', () => rm(work, { recursive: true, force: true }))
    // Only the registry sections need the registry (the API section has its own upstream).
    const registry = runs('local') || runs('cold') || runs('pull') || runs('p2p') || runs('link') || runs('swarm') || runs('herd')
      ? await startRegistry()
      : undefined
    if (registry !== undefined) cleanup.add('registry', () => registry.destroy())
    if (registry !== undefined && (runs('local') || runs('cold') || runs('pull'))) {
      const sidecarDir = join(work, 'sidecar')
      await mkdir(sidecarDir)
      const sidecar = await startSidecar(
        { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`, CACHE_LOG_LEVEL: 'info', CACHE_MAX_SIZE: '20GB' },
        { dir: sidecarDir }
      )
      cleanup.add('sidecar', () => sidecar.destroy())
      const sidecarPid = sidecar.proc.child.pid
      if (sidecarPid === undefined) throw new Error('sidecar has no pid')
      log(`registry ${registry.url}, sidecar ${sidecar.url} (pid ${sidecarPid})`)
      const ctx: Ctx = { work, registry, sidecar, sidecarPid, cleanup, rows, samples }

      if (runs('local')) await localHits(ctx)
      if (runs('cold')) await concurrentCold(ctx)
      if (runs('pull')) await pulls(ctx)
      // Out of the way of the P2P sections (CPU, memory, page cache).
      await sidecar.destroy()
      await rm(sidecarDir, { recursive: true, force: true })
    }
    // The P2P and API sections start their own sidecars; one failing is reported as a FAIL row and
    // the run goes on (its nodes are already torn down), so the table still comes out.
    const section = async (name: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        if (cleanup.started) throw err
        log(`${name}: FAILED: ${(err as Error).stack ?? String(err)}`)
        samples[`${name}_error`] = String((err as Error).message ?? err)
        rows.push({
          metric: `${name}: section failed`,
          unit: '-',
          value: NaN,
          baseline: undefined,
          ratio: undefined,
          target: 'completes',
          pass: false,
          digits: 0,
          note: (err as Error).message
        })
      }
    }
    if (registry !== undefined) {
      const p2pCtx = { work, registry, cleanup, rows, samples, log }
      if (runs('p2p')) await section('P2P transfer', () => p2pThroughput(p2pCtx, P2P_CFG))
      if (runs('link')) await section('P2P link', () => p2pLink(p2pCtx, LINK_CFG))
      if (runs('swarm')) await section('P2P swarm', () => swarmTtfb(p2pCtx, P2P_CFG))
      if (runs('herd')) await section('herd', () => herd(p2pCtx, HERD_CFG))
    }
    if (runs('api')) await section('API cache', () => apiCache({ work, cleanup, rows, samples, log }, API_CFG))
    if (runs('proxy')) await section('proxy', () => proxyBench({ work, cleanup, rows, samples, log }, PROXY_CFG))
    if (runs('push')) await section('push', () => pushBench({ work, cleanup, rows, samples, log }, PUSH_CFG))
    if (runs('actions')) await section('actions', () => actionsCacheBench({ work, cleanup, rows, samples, log }, ACTIONS_CFG))
    if (runs('s3')) await section('s3', () => s3Bench({ work, cleanup, rows, samples, log }, S3_CFG))
    if (runs('reliability')) {
      await section('churn soak', () => churnRows({ rows, samples, log }, RELIABILITY_CFG))
      await section('overload', () => overloadRows({ rows, samples, log }, RELIABILITY_CFG))
      await section('fuzzing', () => fuzzRows({ rows, samples, log }, RELIABILITY_CFG))
    }
  } catch (err) {
    if (cleanup.started) return await new Promise<number>(() => {}) // guard() is exiting
    log(`FAILED: ${(err as Error).stack ?? String(err)}`)
    await cleanup.run()
    disarm()
    return 1
  }
  await cleanup.run()
  disarm()

  const loadEnd = loadavg()
  console.log(
    `\np2p-cache bench (${CFG.mode}; ratios against baselines measured in this run; ${cpus().length} cpus, 1-min load ${
      (loadStart[0] ?? 0).toFixed(2)
    } at start, ${(loadEnd[0] ?? 0).toFixed(2)} at end)\n`
  )
  console.log(formatTable(rows))
  const notes = rows.filter(r => r.note !== undefined).map(r => `  ${r.metric}: ${r.note ?? ''}`)
  if (notes.length > 0) console.log(`\nnotes:\n${notes.join('\n')}`)

  const outDir = join(ROOT, '.bench')
  await mkdir(outDir, { recursive: true })
  const outFile = join(outDir, 'results.json')
  await writeFile(
    outFile,
    JSON.stringify(
      {
        mode: CFG.mode,
        startedAt,
        node: process.version,
        cpus: cpus().length,
        loadavg: { start: loadStart, end: loadEnd },
        config: {
          ...CFG,
          p2p: P2P_CFG,
          link: LINK_CFG,
          herd: HERD_CFG,
          api: API_CFG,
          proxy: PROXY_CFG,
          push: PUSH_CFG,
          actions: ACTIONS_CFG,
          s3: S3_CFG,
          reliability: RELIABILITY_CFG,
          sections: [...SECTIONS]
        },
        durationS: Number(((performance.now() - t0) / 1000).toFixed(1)),
        rows,
        samples
      },
      null,
      2
    ) + '\n'
  )
  console.log(`\nwrote ${outFile} (${((performance.now() - t0) / 1000).toFixed(0)} s total)`)
  return 0
}

main().then(code => process.exit(code), (err: unknown) => {
  console.error(err)
  process.exit(1)
})
