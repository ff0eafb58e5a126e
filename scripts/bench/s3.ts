/**
 * The "s3" rows of `npm run bench` (issue 27): the bucket tier (CACHE_S3_URL) against the
 * upstream it stands in for, on this host's loopback, side by side in one run. s3rver (the test
 * fixture, in this process) is the bucket, the Debian docker-registry the upstream.
 *
 *   - fill: a sidecar with the bucket pulls a new image (`layers` random layers, BENCH_S3_MIB in
 *     all: 256 MiB, quick 64) with skopeo from the registry and uploads it in the background;
 *     once its upload queue is empty (s3_queue 0) and every blob of the image is in the bucket,
 *     it is destroyed with its store;
 *   - rounds (BENCH_S3_ROUNDS: 3, quick 2), the order alternating: a cold skopeo pull through a
 *     fresh sidecar without the bucket (from the registry: the baseline), and through a fresh
 *     sidecar with the bucket and no peers (CACHE_ENABLE_P2P=false, an empty CACHE_DIR). The
 *     registry keeps running: the bucket comes first on the read path, and the bucket node's
 *     stats must show it (upstream_hits 0, s3_hits > 0) or the section fails. Goal: the pull
 *     from the bucket within 1.3x of the pull from the registry;
 *   - the upload's CPU: the fill sidecar's CPU seconds (/proc/<pid>/stat) from the end of its
 *     pull to its queue drained, per GiB it wrote (s3_bytes_written), against the CPU per GiB of
 *     the baseline nodes' pulls from the registry. Uploads start as each blob is committed, so
 *     some of them run during the pull (outside the window): the note says how many bytes were
 *     written by the end of the pull, and a second row takes the fill node's CPU from the start
 *     of its pull to its queue drained, less the CPU of a pull without the bucket;
 *   - where the time goes: the largest layer read raw, once with the AWS SDK's GetObject from
 *     s3rver and once with node:http from the registry, each by a plain node process of its own.
 */
import { execFile } from 'node:child_process'
import { mkdir, rm } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { startRegistry, type Registry } from '../../test/fixtures/registry.js'
import { startS3Server, type S3Server } from '../../test/fixtures/s3-server.js'
import { startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { buildImage, type ImageDescription } from '../../test/fixtures/oci-image.js'
import { layoutBlobDigests, pullToLayout, pushLayout } from '../../test/fixtures/skopeo.js'
import { waitFor } from '../../test/fixtures/wait.js'
import { withSectionCleanup, type Cleanup } from './cleanup.js'
import { sleep, spread, type SectionCtx } from './common.js'
import { cpuSeconds, machineCpuSeconds } from './proc.js'
import { median, MB, MiB, ratioOf } from './report.js'

export interface S3BenchConfig {
  /** The image: `layers` random layers of `layerBytes` each (before gzip, which gains nothing). */
  layers: number
  layerBytes: number
  /** Rounds; each a cold pull from the registry and one from the bucket, on fresh nodes. */
  rounds: number
  /** Raw GETs of the largest layer from each server. */
  rawGets: number
  requestTimeoutMs: number
}

export function s3BenchConfig (quick: boolean, requestTimeoutMs: number): S3BenchConfig {
  const mib = Number(process.env.BENCH_S3_MIB ?? (quick ? '64' : '256'))
  const rounds = Number(process.env.BENCH_S3_ROUNDS ?? (quick ? '2' : '3'))
  if (!(mib >= 4) || !(rounds >= 1)) throw new Error(`BENCH_S3_MIB (${mib}) must be >= 4 and BENCH_S3_ROUNDS (${rounds}) >= 1`)
  return { layers: 4, layerBytes: Math.round(mib * MiB / 4), rounds, rawGets: 3, requestTimeoutMs }
}

const GiB = 1024 * MiB
const REPO = 'bench/s3'
const TAG = 'v1'
/** Under CACHE_S3_URL's prefix (server.env() default `cache`). */
const PREFIX = 'cache'
const blobKey = (digest: string): string => `${PREFIX}/blobs/sha256/${digest.slice('sha256:'.length)}`
const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')

/**
 * One raw GET, in a plain node process of its own (s3rver runs in this one): BENCH_GET=s3 reads
 * BENCH_S3_KEY with the SDK's GetObject, set up as the sidecar's client is (path style, checksums
 * only when required); BENCH_GET=http reads BENCH_URL with node:http. Prints `{ bytes, ms }`.
 */
const RAW_GET_SOURCE = `
import { request } from 'node:http'
import { performance } from 'node:perf_hooks'
const e = process.env
let bytes = 0
let t = performance.now()
if (e.BENCH_GET === 's3') {
  const { S3Client, GetObjectCommand } = await import('@aws-sdk/client-s3')
  const client = new S3Client({ endpoint: e.BENCH_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
  // Timed from the request on: the SDK's loading is the process's, not the read's.
  t = performance.now()
  const out = await client.send(new GetObjectCommand({ Bucket: e.BENCH_S3_BUCKET, Key: e.BENCH_S3_KEY }))
  for await (const chunk of out.Body) bytes += chunk.length
  client.destroy()
} else {
  await new Promise((done, fail) => {
    request(e.BENCH_URL, { agent: false }, res => {
      if (res.statusCode !== 200) { fail(new Error('GET ' + e.BENCH_URL + ': ' + res.statusCode)); return }
      res.on('data', c => { bytes += c.length })
      res.on('end', done)
      res.on('error', fail)
    }).on('error', fail).end()
  })
}
console.log(JSON.stringify({ bytes, ms: performance.now() - t }))
`

async function rawGet (env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ bytes: number, ms: number }> {
  return await new Promise((done, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', RAW_GET_SOURCE], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...env },
      timeout: timeoutMs
    }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`raw GET (${env.BENCH_GET ?? '?'}): ${err.message}\n${stderr}`))
      else done(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { bytes: number, ms: number })
    })
  })
}

/** A sidecar on this host, no peers, its store under `dir` (removed by the cleanup). */
async function node (
  local: Cleanup,
  dir: string,
  registry: Registry,
  s3: S3Server | undefined
): Promise<{ side: SidecarProcess, pid: number, done: () => Promise<void> }> {
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const side = await startSidecar(
    {
      CACHE_ENABLE_P2P: 'false',
      CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
      CACHE_LOG_LEVEL: 'warn',
      CACHE_MAX_SIZE: '20GB',
      ...(s3 !== undefined ? s3.env(PREFIX) : {})
    },
    { dir }
  )
  const done = async (): Promise<void> => {
    await side.destroy()
    await rm(dir, { recursive: true, force: true })
  }
  local.add(`s3 node ${dir}`, done)
  const pid = side.proc.child.pid
  if (pid === undefined) throw new Error('s3 bench: the sidecar has no pid')
  return { side, pid, done }
}

export async function s3Bench (ctx: SectionCtx, cfg: S3BenchConfig): Promise<void> {
  const size = `${(cfg.layers * cfg.layerBytes / MiB).toFixed(0)} MiB`
  await withSectionCleanup(ctx, 's3', async local => {
    const dir = join(ctx.work, 's3')
    await mkdir(dir, { recursive: true })
    local.add('s3 dir', () => rm(dir, { recursive: true, force: true }))
    const registry = await startRegistry()
    local.add('s3 registry', () => registry.destroy())
    const s3 = await startS3Server()
    local.add('s3 server', () => s3.close())

    ctx.log(`s3: building and pushing an image of ${cfg.layers}x${(cfg.layerBytes / MiB).toFixed(0)} MiB layers`)
    const layout = join(dir, 'image')
    const image: ImageDescription = await buildImage(layout, { tag: TAG, layers: cfg.layers, layerSize: cfg.layerBytes })
    await pushLayout(layout, TAG, registry.host, REPO, { timeoutMs: cfg.requestTimeoutMs })
    await rm(layout, { recursive: true, force: true })
    const imageBytes = image.layers.reduce((s, l) => s + l.size, 0)

    /** Checks the layout of a pull (every blob there, re-hashed) and removes it. */
    const check = async (name: string): Promise<void> => {
      const out = join(dir, `pulled-${name}`)
      const got = new Set(await layoutBlobDigests(out))
      const missing = image.allBlobDigests.filter(d => !got.has(d))
      if (missing.length > 0) throw new Error(`s3 bench: the pull through ${name} lacks ${missing.join(', ')}`)
      await rm(out, { recursive: true, force: true })
    }

    // Fill: one node pulls from the registry and uploads; its CPU from the pull's end to the queue drained.
    const fill = await node(local, join(dir, 'fill'), registry, s3)
    await sleep(1_000)
    const idle0 = cpuSeconds(fill.pid)
    const idleT = performance.now()
    await sleep(2_000)
    const idleCores = (cpuSeconds(fill.pid) - idle0) / ((performance.now() - idleT) / 1000)
    const cpuStart = cpuSeconds(fill.pid)
    const tPull = performance.now()
    await pullToLayout(fill.side.host, REPO, TAG, join(dir, 'pulled-fill'), { timeoutMs: cfg.requestTimeoutMs })
    const cpuPullEnd = cpuSeconds(fill.pid)
    const tPullEnd = performance.now()
    const fillPullS = (tPullEnd - tPull) / 1000
    const atPullEnd = await fill.side.stats()
    const wanted = image.allBlobDigests.map(blobKey)
    await waitFor(async () => (await fill.side.stats()).s3_queue === 0 && wanted.every(k => s3.puts.has(k)), {
      timeoutMs: cfg.requestTimeoutMs,
      intervalMs: 100,
      what: "the fill node's uploads to the bucket"
    })
    const cpuDrained = cpuSeconds(fill.pid)
    const drainS = (performance.now() - tPullEnd) / 1000
    const filled = await fill.side.stats()
    const keys = new Set(await s3.keys(`${PREFIX}/blobs/`))
    const absent = wanted.filter(k => !keys.has(k))
    if (absent.length > 0) throw new Error(`s3 bench: not in the bucket after the fill: ${absent.join(', ')}`)
    await check('fill')
    const written = filled.s3_bytes_written ?? 0
    const writtenByPullEnd = atPullEnd.s3_bytes_written ?? 0
    const uploadCpu = cpuDrained - cpuPullEnd
    const uploadCpuPerGiB = uploadCpu / (written / GiB)
    ctx.log(
      `s3: fill pull ${fillPullS.toFixed(2)} s, then the queue drained in ${drainS.toFixed(2)} s; ${
        (written / MB).toFixed(1)
      } MB written in ${filled.s3_uploads ?? 0} objects (${
        (writtenByPullEnd / MB).toFixed(1)
      } MB of it by the end of the pull); sidecar CPU ${(cpuPullEnd - cpuStart).toFixed(2)} s during the pull, ${
        uploadCpu.toFixed(2)
      } s after it (${uploadCpuPerGiB.toFixed(2)} CPU-s/GiB); idle ${idleCores.toFixed(3)} cores`
    )
    await fill.done()

    // Rounds: fresh nodes, one without the bucket (from the registry), one with it (from the bucket).
    const secs: Record<'registry' | 'bucket', number[]> = { registry: [], bucket: [] }
    const cpu: Record<'registry' | 'bucket', number[]> = { registry: [], bucket: [] }
    /** Where the CPU went during each pull: all of this machine's, and this process's (s3rver serves the bucket from it; the bench itself idles). */
    const machine: Record<'registry' | 'bucket', number[]> = { registry: [], bucket: [] }
    const here: Record<'registry' | 'bucket', number[]> = { registry: [], bucket: [] }
    const ownCpu = (): number => {
      const u = process.cpuUsage()
      return (u.user + u.system) / 1e6
    }
    const bucketStats: Array<Record<string, number>> = []
    const fresh = async (from: 'registry' | 'bucket', round: number): Promise<void> => {
      const n = await node(local, join(dir, `${from}-${round}`), registry, from === 'bucket' ? s3 : undefined)
      const [c, m, o] = [cpuSeconds(n.pid), machineCpuSeconds(), ownCpu()]
      const t = performance.now()
      await pullToLayout(n.side.host, REPO, TAG, join(dir, `pulled-${from}-${round}`), { timeoutMs: cfg.requestTimeoutMs })
      secs[from].push((performance.now() - t) / 1000)
      cpu[from].push(cpuSeconds(n.pid) - c)
      machine[from].push(machineCpuSeconds() - m)
      here[from].push(ownCpu() - o)
      await check(`${from}-${round}`)
      const st = await n.side.stats()
      if (from === 'bucket') {
        bucketStats.push(st)
        if ((st.upstream_hits ?? 0) !== 0 || (st.s3_hits ?? 0) === 0) {
          throw new Error(
            `s3 bench: the bucket node's pull was not from the bucket: upstream_hits ${st.upstream_hits ?? '-'}, s3_hits ${
              st.s3_hits ?? '-'
            }, s3_errors ${st.s3_errors ?? '-'}`
          )
        }
      } else if ((st.upstream_hits ?? 0) === 0) throw new Error("s3 bench: the registry node's pull had no upstream hits")
      await n.done()
    }
    for (let round = 0; round < cfg.rounds; round++) {
      const order = round % 2 === 0 ? ['registry', 'bucket'] as const : ['bucket', 'registry'] as const
      for (const from of order) await fresh(from, round)
      const st = bucketStats.at(-1)
      ctx.log(
        `s3: round ${round + 1}/${cfg.rounds}: cold pull from the registry ${secs.registry.at(-1)?.toFixed(2) ?? '-'} s (CPU: sidecar ${
          cpu.registry.at(-1)?.toFixed(2) ?? '-'
        } s, machine ${machine.registry.at(-1)?.toFixed(2) ?? '-'} s), from the bucket ${
          secs.bucket.at(-1)?.toFixed(2) ?? '-'
        } s (CPU: sidecar ${cpu.bucket.at(-1)?.toFixed(2) ?? '-'} s, s3rver ${here.bucket.at(-1)?.toFixed(2) ?? '-'} s, machine ${
          machine.bucket.at(-1)?.toFixed(2) ?? '-'
        } s; s3_hits ${st?.s3_hits ?? '-'}, upstream_hits ${st?.upstream_hits ?? '-'}, ${
          ((st?.s3_bytes_read ?? 0) / MB).toFixed(1)
        } MB read from the bucket)`
      )
    }

    // Where the time goes: the largest layer, raw, from each server.
    const largest = [...image.layers].sort((a, b) => b.size - a.size)[0]
    if (largest === undefined) throw new Error('s3 bench: the image has no layer')
    const raw: Record<'s3rver' | 'registry', number[]> = { s3rver: [], registry: [] }
    for (let i = 0; i < cfg.rawGets; i++) {
      const s = await rawGet({
        BENCH_GET: 's3',
        BENCH_S3_ENDPOINT: s3.endpoint,
        BENCH_S3_BUCKET: s3.bucket,
        BENCH_S3_KEY: blobKey(largest.digest)
      }, cfg.requestTimeoutMs)
      const r = await rawGet({ BENCH_GET: 'http', BENCH_URL: `${registry.url}/v2/${REPO}/blobs/${largest.digest}` }, cfg.requestTimeoutMs)
      if (s.bytes !== largest.size || r.bytes !== largest.size) {
        throw new Error(`s3 bench: raw GETs read ${s.bytes} and ${r.bytes} bytes of a ${largest.size} byte layer`)
      }
      raw.s3rver.push(s.bytes / MB / (s.ms / 1000))
      raw.registry.push(r.bytes / MB / (r.ms / 1000))
    }
    ctx.log(
      `s3: raw GET of the largest layer (${(largest.size / MB).toFixed(1)} MB): s3rver GetObject ${spread(raw.s3rver, 0)} MB/s, registry ${
        spread(raw.registry, 0)
      } MB/s`
    )

    const [bucketS, registryS] = [median(secs.bucket), median(secs.registry)]
    const pullCpuPerGiB = median(cpu.registry) / (imageBytes / GiB)
    // The fill node's whole pull + upload, less what a pull without the bucket costs.
    const wholeUploadCpuPerGiB = (cpuDrained - cpuStart - median(cpu.registry)) / (written / GiB)
    ctx.samples.s3 = {
      size,
      imageBytes,
      secs,
      cpu,
      machineCpu: machine,
      benchProcessCpu: here,
      bucketStats,
      fill: {
        pullS: fillPullS,
        drainS,
        written,
        writtenByPullEnd,
        uploads: filled.s3_uploads,
        cpuPull: cpuPullEnd - cpuStart,
        cpuAfterPull: uploadCpu,
        idleCores
      },
      raw
    }
    ctx.rows.push({
      metric: `s3: cold pull ${size} on a fresh node from the bucket vs from the registry (loopback)`,
      unit: 's',
      value: bucketS,
      baseline: registryS,
      ratio: ratioOf(bucketS, registryS),
      target: '<= 1.3',
      pass: ratioOf(bucketS, registryS) <= 1.3,
      digits: 2,
      note: `bucket ${spread(secs.bucket, 2)}, registry ${
        spread(secs.registry, 2)
      } (${cfg.rounds} rounds, skopeo through a fresh sidecar each); CPU-s per pull: sidecar ${spread(cpu.bucket, 2)} from the bucket, ${
        spread(cpu.registry, 2)
      } from the registry; s3rver (in the bench process) ${spread(here.bucket, 2)}; the whole machine ${spread(machine.bucket, 2)} vs ${
        spread(machine.registry, 2)
      } (${cpus().length} cores); raw GET of the largest layer: s3rver GetObject ${median(raw.s3rver).toFixed(0)} MB/s, registry ${
        median(raw.registry).toFixed(0)
      } MB/s (medians)`
    })
    ctx.rows.push({
      metric:
        's3: upload to the bucket, sidecar CPU per GiB written, after the pull until the queue drained, vs its pull from the registry (loopback)',
      unit: 'CPU-s/GiB',
      value: uploadCpuPerGiB,
      baseline: pullCpuPerGiB,
      ratio: ratioOf(uploadCpuPerGiB, pullCpuPerGiB),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `${uploadCpu.toFixed(2)} CPU-s in ${drainS.toFixed(2)} s over ${(written / MB).toFixed(1)} MB (s3_bytes_written), of which ${
        (writtenByPullEnd / MB).toFixed(1)
      } MB were written before the pull ended (uploads start at each commit), so the window sees only part of the upload; idle sidecar ${
        idleCores.toFixed(3)
      } cores (not subtracted); baseline: CPU per GiB of the cold pulls from the registry (median)`
    })
    ctx.rows.push({
      metric:
        "s3: upload to the bucket, sidecar CPU per GiB written, the fill node's pull + upload less a pull without the bucket (loopback)",
      unit: 'CPU-s/GiB',
      value: wholeUploadCpuPerGiB,
      baseline: pullCpuPerGiB,
      ratio: ratioOf(wholeUploadCpuPerGiB, pullCpuPerGiB),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `fill node ${(cpuDrained - cpuStart).toFixed(2)} CPU-s from its pull's start to its queue drained, less ${
        median(cpu.registry).toFixed(2)
      } CPU-s (the registry nodes' pull, median); it includes the fill node's bucket misses (a GetObject per blob before the upstream); one sample`
    })
  })
}
