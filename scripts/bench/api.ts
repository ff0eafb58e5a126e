/**
 * The HTTP API cache rows of `npm run bench` (the issue's goals: "rate-limit units spent through
 * the cache / direct ≤ 0.3 for 10 jobs, falling with more jobs"; "hit p99 under 50 connections as
 * a ratio to the stand-in's own p99 in the same run ≤ 1.2×"):
 *
 *   7. cache-hit latency under concurrent load: one sidecar (P2P off) in front of the fake
 *      api.github.com (test/fixtures/fake-github.ts); an anonymous, `public, max-age=60`
 *      resource is warmed, then autocannon drives it with `connections` keep-alive connections.
 *      p50 and p99 of the X-Cache: HIT answers and requests/s, against the same load straight
 *      on the fake in the same run. The p99 row's target is the ratio (sidecar p99 / the fake's
 *      own p99 ≤ 1.2); the absolute p99 is the value column and is repeated in its note;
 *   8. the same for an authenticated (`private`) resource, which the sidecar answers
 *      REVALIDATED: every answer rests on a conditional request upstream with the client's own
 *      ETag (304, no rate limit); no targets;
 *   9. per-job replay: CI jobs, each with a new token (`ghs_job<n>_<random>`, may read the
 *      private acme/private, like GITHUB_TOKEN), each making the same 30 GETs (21 distinct:
 *      single resources with Last-Modified, paginated lists without, the private repository
 *      and a file in it; test/apicache/fleet.test.ts) one after another, against a fresh fake
 *      whose ETags are token-specific and whose answers have max-age 0 (each GET finds the
 *      stored copies stale, as jobs minutes apart do). Through the sidecar with a fleet credential
 *      (CACHE_API_AUTH for the `replay` upstream): rate-limit units = the job tokens' + the
 *      fleet's, for the first 10 jobs (target ratio ≤ 0.3) and for all of a larger count
 *      (target: a lower ratio than for 10 jobs), one cold run whose first 10 jobs are the
 *      10-job figure; baseline: the same jobs straight to the fake with tokens of their own
 *      (one unit per GET). Every answer through the sidecar must have the direct one's status
 *      and body, or the row fails. One more row, no target: the same 10 jobs through an
 *      upstream of the same sidecar without a fleet credential (`replaynofleet`), what each
 *      job's own token pays then.
 *
 * The fakes run in processes of their own (test/fixtures/fake-github-proc.ts), so neither the
 * upstream nor the baseline shares an event loop with the load generator, which runs in the
 * bench process. Latencies are autocannon's per-response times (request written → response
 * complete), kept per X-Cache value: only answers of the expected kind (HIT, REVALIDATED) count
 * for the sidecar, only 200s for the baseline; the rest are counted and reported.
 *
 * BENCH_API_CONNECTIONS changes the connection count (default 50).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import { startFakeGitHubProcess, type FakeGitHubProcess } from '../../test/fixtures/fake-github-child.js'
import { jobRequests } from '../../test/fixtures/fake-github.js'
import { startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { withSectionCleanup } from './cleanup.js'
import { gcDelta, sidecarGc, type GcCounts, type SectionCtx } from './common.js'
import { cpuSeconds, memory } from './proc.js'
import { MB, percentile, ratioOf } from './report.js'

export interface ApiConfig {
  /** Rows 7 and 8: autocannon connections, and timed seconds of load per target (two halves). */
  connections: number
  loadSeconds: number
  /** Untimed load on each target before its timed runs (JIT, connection set-up). */
  warmSeconds: number
  /** Row 9: job counts with a fleet credential (the smallest has the ≤ 0.3 target), and without. */
  replayJobs: number[]
  replayNoFleetJobs: number
}

export function apiConfig (quick: boolean): ApiConfig {
  return {
    connections: Number(process.env.BENCH_API_CONNECTIONS ?? '50'),
    loadSeconds: quick ? 4 : 10,
    warmSeconds: quick ? 0.5 : 1,
    replayJobs: quick ? [10, 20] : [10, 30],
    replayNoFleetJobs: 10
  }
}

export type ApiCtx = SectionCtx

/** What Octokit sends; the same on every request, through the sidecar and direct. */
const ACCEPT = 'application/vnd.github+json'

// ---------------------------------------------------------------------------------------
// Load (autocannon), latencies per X-Cache value
// ---------------------------------------------------------------------------------------

/** A header of an autocannon 'headers' event: http-parser-js's info, headers as a flat list. */
function headerOf (info: unknown, name: string): string | undefined {
  const h = (info as { headers?: unknown } | undefined)?.headers
  if (Array.isArray(h)) {
    for (let i = 0; i + 1 < h.length; i += 2) if (String(h[i]).toLowerCase() === name) return String(h[i + 1])
    return undefined
  }
  if (typeof h === 'object' && h !== null) {
    const v = (h as Record<string, unknown>)[name]
    return v === undefined ? undefined : String(v)
  }
  return undefined
}

interface Load {
  /** Latencies (ms) of 200 answers by X-Cache value ('-' when absent). */
  ok: Map<string, number[]>
  /** Answers by `<status> <X-Cache>`. */
  answers: Record<string, number>
  responses: number
  seconds: number
  errors: number
  timeouts: number
  /** CPU seconds over the run: each watched process, and the bench (load generator) itself. */
  cpu: Record<string, number>
  gc?: GcCounts
}

function emptyLoad (): Load {
  return { ok: new Map(), answers: {}, responses: 0, seconds: 0, errors: 0, timeouts: 0, cpu: {} }
}

function addLoad (into: Load, x: Load): void {
  for (const [k, v] of x.ok) {
    const list = into.ok.get(k) ?? []
    for (const ms of v) list.push(ms)
    into.ok.set(k, list)
  }
  for (const [k, v] of Object.entries(x.answers)) into.answers[k] = (into.answers[k] ?? 0) + v
  into.responses += x.responses
  into.seconds += x.seconds
  into.errors += x.errors
  into.timeouts += x.timeouts
  for (const [k, v] of Object.entries(x.cpu)) into.cpu[k] = (into.cpu[k] ?? 0) + v
  if (x.gc !== undefined) {
    into.gc = into.gc === undefined
      ? x.gc
      : { major: into.gc.major + x.gc.major, all: into.gc.all + x.gc.all, seconds: into.gc.seconds + x.gc.seconds }
  }
}

async function drive (
  url: string,
  headers: Record<string, string>,
  seconds: number,
  connections: number,
  watch: Record<string, number>,
  sidecarUrl?: string
): Promise<Load> {
  const load = emptyLoad()
  const cpu0 = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]))
  const self0 = process.cpuUsage()
  const gc0 = sidecarUrl === undefined ? undefined : await sidecarGc(sidecarUrl)
  const started = performance.now()
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    headers,
    timeout: 10,
    // autocannon stops at the first sample tick after `duration`: tick often, so a run lasts
    // `duration` (+ <= 0.1 s), not up to a second more.
    sampleInt: 100,
    setupClient: client => {
      let cache = '-'
      const ee = client as unknown as NodeJS.EventEmitter
      ee.on('headers', (info: unknown) => {
        cache = headerOf(info, 'x-cache') ?? '-'
      })
      ee.on('response', (status: number, _bytes: number, ms: number) => {
        load.responses++
        const key = `${status} ${cache}`
        load.answers[key] = (load.answers[key] ?? 0) + 1
        if (status === 200) {
          let list = load.ok.get(cache)
          if (list === undefined) {
            list = []
            load.ok.set(cache, list)
          }
          list.push(ms)
        }
        cache = '-'
      })
    }
  })
  load.seconds = (performance.now() - started) / 1000
  const self = process.cpuUsage(self0)
  load.cpu['load generator'] = (self.user + self.system) / 1e6
  for (const [k, pid] of Object.entries(watch)) load.cpu[k] = cpuSeconds(pid) - (cpu0[k] ?? 0)
  load.errors = result.errors
  load.timeouts = result.timeouts
  if (gc0 !== undefined && sidecarUrl !== undefined) load.gc = gcDelta(gc0, await sidecarGc(sidecarUrl))
  return load
}

/** Math.max(...xs) overflows the stack for a few hundred thousand samples. */
const maxOf = (xs: number[]): number => xs.reduce((m, x) => x > m ? x : m, -Infinity)
const fmt = (x: number, d = 2): string => Number.isFinite(x) ? x.toFixed(d) : '-'
const tally = (counts: Record<string, number>): string =>
  Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'

async function get (url: string, headers: Record<string, string>): Promise<{ status: number, cache: string, text: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) })
  const text = await res.text()
  return { status: res.status, cache: res.headers.get('x-cache') ?? '-', text }
}

// ---------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------

export async function apiCache (ctx: ApiCtx, cfg: ApiConfig): Promise<void> {
  await withSectionCleanup(ctx, 'API cache', async local => {
    const { work, log } = ctx
    // Rows 7-8: a rate limit that load can't exhaust, recorded requests forgotten every 200 ms
    // (counts come from the rate-limit buckets and the sidecar's stats). Row 9: 5000 per bucket,
    // every request recorded, the fleet token known from the start, job tokens added per job.
    const [loadFake, replayFake] = await Promise.all([
      startFakeGitHubProcess({ rateLimit: 1e12 }, { clearMs: 200 }),
      // max-age 0: every job comes after the stored copies went stale, as jobs minutes apart do
      // (with GitHub's 60 s, back-to-back jobs would be answered from memory and never revalidate).
      startFakeGitHubProcess({ tokens: { [FLEET]: { repos: JOB_REPOS } }, maxAgeS: 0 })
    ])
    local.add('API fake (load)', loadFake.stop)
    local.add('API fake (replay)', replayFake.stop)
    const dir = join(work, 'api-sidecar')
    await mkdir(dir, { recursive: true })
    local.add('API sidecar dir', () => rm(dir, { recursive: true, force: true }))
    const sidecar = await startSidecar(
      {
        // `replay` and `replaynofleet` are the same fake: with and without a fleet credential.
        CACHE_API_UPSTREAMS: `bench=${loadFake.url},replay=${replayFake.url},replaynofleet=${replayFake.url}`,
        CACHE_API_AUTH: `replay=${FLEET}`,
        CACHE_ENABLE_P2P: 'false',
        CACHE_LOG_LEVEL: 'warn'
      },
      { dir }
    )
    local.add('API sidecar', () => sidecar.destroy())
    const sidecarPid = sidecar.proc.child.pid
    if (sidecarPid === undefined) throw new Error('sidecar has no pid')
    log(
      `API: fake api.github.com ${loadFake.url} (pid ${loadFake.pid}) and ${replayFake.url} (pid ${replayFake.pid}), sidecar ${sidecar.url} (pid ${sidecarPid})`
    )

    await loadRows(ctx, cfg, sidecar, sidecarPid, loadFake)
    await perJobReplayRows(ctx, cfg, sidecar, replayFake)

    const warnings = sidecar.logs().filter(l => {
      const m = /"level":(\d+)/.exec(l)
      return m !== null && Number(m[1]) >= 40
    })
    ctx.samples['api_sidecar_warnings'] = warnings.slice(-20)
    if (warnings.length > 0) {
      log(`API: sidecar logged ${warnings.length} warnings, last: ${warnings[warnings.length - 1]?.slice(0, 300) ?? ''}`)
    }
  })
}

async function loadRows (ctx: ApiCtx, cfg: ApiConfig, sidecar: SidecarProcess, sidecarPid: number, fake: FakeGitHubProcess): Promise<void> {
  const { rows, log } = ctx
  const n = cfg.connections
  const path = '/repos/acme/public'
  const watch = { sidecar: sidecarPid, fake: fake.pid }

  // Warm the anonymous resource: MISS, then HIT.
  const first = await get(`${sidecar.url}/bench${path}`, { accept: ACCEPT })
  const second = await get(`${sidecar.url}/bench${path}`, { accept: ACCEPT })
  if (first.status !== 200 || first.cache !== 'MISS' || second.cache !== 'HIT') {
    throw new Error(`API warm-up: expected 200 MISS then HIT, got ${first.status} ${first.cache} then ${second.status} ${second.cache}`)
  }
  const direct = await get(`${fake.url}${path}`, { accept: ACCEPT })
  if (direct.text !== second.text) throw new Error("API warm-up: the HIT body differs from the fake's")

  interface Case {
    key: string
    label: string
    token?: string
    expect: 'HIT' | 'REVALIDATED'
  }
  const cases: Case[] = [
    { key: 'hit', label: 'anonymous public GET, X-Cache HIT', expect: 'HIT' },
    { key: 'revalidated', label: 'authenticated GET (alice), X-Cache REVALIDATED', token: 'alice', expect: 'REVALIDATED' }
  ]
  for (const c of cases) {
    const headers: Record<string, string> = { accept: ACCEPT, ...(c.token === undefined ? {} : { authorization: `token ${c.token}` }) }
    const bucket = c.token ?? 'anon'
    if (c.token !== undefined) {
      const once = await get(`${sidecar.url}/bench${path}`, headers)
      if (once.status !== 200 || once.cache !== c.expect) {
        throw new Error(`API ${c.key}: expected 200 ${c.expect}, got ${once.status} ${once.cache}`)
      }
    }
    const sideUrl = `${sidecar.url}/bench${path}`
    const baseUrl = `${fake.url}${path}`
    // Untimed: JIT in all three processes, connections.
    await drive(sideUrl, headers, cfg.warmSeconds, n, watch)
    await drive(baseUrl, headers, cfg.warmSeconds, n, watch)

    const side = emptyLoad()
    const base = emptyLoad()
    const stats0 = await sidecar.stats()
    const rss0 = memory(sidecarPid).rss
    let sideUnits = 0
    let baseUnits = 0
    const half = cfg.loadSeconds / 2
    const runSide = async (): Promise<void> => {
      const before = await fake.rateLimit(bucket)
      addLoad(side, await drive(sideUrl, headers, half, n, watch, sidecar.url))
      sideUnits += before - await fake.rateLimit(bucket)
    }
    const runBase = async (): Promise<void> => {
      const before = await fake.rateLimit(bucket)
      addLoad(base, await drive(baseUrl, headers, half, n, watch))
      baseUnits += before - await fake.rateLimit(bucket)
    }
    // Alternate who goes first so drift hits both alike.
    await runSide()
    await runBase()
    await runBase()
    await runSide()
    const stats1 = await sidecar.stats()
    const rss1 = memory(sidecarPid).rss
    const d = (k: string): number => (stats1[k] ?? 0) - (stats0[k] ?? 0)

    const lat = side.ok.get(c.expect) ?? []
    const baseLat = base.ok.get('-') ?? []
    const p50 = percentile(lat, 50)
    const p99 = percentile(lat, 99)
    const b50 = percentile(baseLat, 50)
    const b99 = percentile(baseLat, 99)
    const rps = lat.length / side.seconds
    const baseRps = baseLat.length / base.seconds
    const others = side.responses - lat.length
    const cpuShare = (l: Load): string => Object.entries(l.cpu).map(([k, v]) => `${k} ${fmt(v / l.seconds, 2)}`).join(', ')
    const cpuPerReq = (l: Load, k: string): number => (l.cpu[k] ?? 0) / Math.max(1, l.responses) * 1e6
    const upstreamConditional = d('revalidations_304')
    log(
      `API ${c.key}: sidecar ${lat.length} ${c.expect} answers in ${fmt(side.seconds, 1)} s (${fmt(rps, 0)}/s), p50 ${fmt(p50)} ms, p99 ${
        fmt(p99)
      } ms, max ${fmt(maxOf(lat))} ms; ` +
        `direct ${baseLat.length} in ${fmt(base.seconds, 1)} s (${fmt(baseRps, 0)}/s), p50 ${fmt(b50)} ms, p99 ${fmt(b99)} ms`
    )
    log(
      `API ${c.key}: sidecar answers: ${tally(side.answers)}; errors ${side.errors}, timeouts ${side.timeouts}; direct answers: ${
        tally(base.answers)
      }, errors ${base.errors}`
    )
    log(
      `API ${c.key}: CPU share of a core while loading the sidecar: ${cpuShare(side)}; direct: ${cpuShare(base)}; sidecar ${
        fmt(cpuPerReq(side, 'sidecar'), 0)
      } us CPU per answer, fake ${fmt(cpuPerReq(base, 'fake'), 0)} us; sidecar GC ${side.gc?.major ?? 0} major of ${side.gc?.all ?? 0}, ${
        fmt((side.gc?.seconds ?? 0) * 1000, 0)
      } ms; sidecar RSS ${fmt(rss0 / MB, 0)} -> ${fmt(rss1 / MB, 0)} MB`
    )
    log(
      `API ${c.key}: upstream during the sidecar runs: ${sideUnits} rate-limit units (full responses), ${upstreamConditional} conditional requests answered 304; direct: ${baseUnits} units; sidecar stats: hits +${
        d('hits')
      }, misses +${d('misses')}, errors +${d('errors')}`
    )
    ctx.samples[`api_${c.key}`] = {
      connections: n,
      sidecar: {
        answers: side.answers,
        seconds: side.seconds,
        per_s: rps,
        p50_ms: p50,
        p90_ms: percentile(lat, 90),
        p99_ms: p99,
        p999_ms: percentile(lat, 99.9),
        max_ms: maxOf(lat),
        errors: side.errors,
        timeouts: side.timeouts,
        cpu_s: side.cpu,
        gc: side.gc
      },
      direct: {
        answers: base.answers,
        seconds: base.seconds,
        per_s: baseRps,
        p50_ms: b50,
        p90_ms: percentile(baseLat, 90),
        p99_ms: b99,
        p999_ms: percentile(baseLat, 99.9),
        max_ms: maxOf(baseLat),
        errors: base.errors,
        timeouts: base.timeouts,
        cpu_s: base.cpu
      },
      upstream: { sidecar_rate_limit_units: sideUnits, sidecar_conditional_304: upstreamConditional, direct_rate_limit_units: baseUnits },
      sidecar_rss: { before: rss0, after: rss1 },
      sidecar_stats_delta: { hits: d('hits'), misses: d('misses'), errors: d('errors'), revalidations_304: upstreamConditional }
    }

    const what = c.expect === 'HIT' ? 'API cache hit' : 'API authenticated GET (REVALIDATED)'
    const othersNote = others > 0 ? `; ${others} other answers not counted (${tally(side.answers)})` : ''
    const closedLoop = `closed loop, ${n} keep-alive connections for ${
      fmt(side.seconds, 1)
    } s per side, interleaved: latency ~ ${n} / (answers/s), so it is mostly the server's throughput`
    rows.push({
      metric: `${what} p50, ${n} conns`,
      unit: 'ms',
      value: p50,
      baseline: b50,
      ratio: ratioOf(p50, b50),
      target: '-',
      pass: undefined,
      digits: 2,
      note:
        `${lat.length} ${c.expect} answers${othersNote}; baseline: the same load straight on the fake api.github.com (own process); ${closedLoop}`
    })
    const p99Ratio = ratioOf(p99, b99)
    rows.push({
      metric: `${what} p99, ${n} conns`,
      unit: 'ms',
      value: p99,
      baseline: b99,
      ratio: p99Ratio,
      target: c.expect === 'HIT' ? 'ratio ≤ 1.2' : '-',
      pass: c.expect === 'HIT' ? p99Ratio <= 1.2 : undefined,
      digits: 2,
      note: `p99 ${fmt(p99)} ms through the sidecar vs ${fmt(b99)} ms straight from the fake (own process) under the same load${
        c.expect === 'HIT' ? ` (the earlier absolute goal, < 5 ms: ${p99 < 5 ? 'met' : 'not met'})` : ''
      }; CPU share of a core meanwhile: ${cpuShare(side)} (direct: ${cpuShare(base)}) on ${cpus().length} CPUs; sidecar ${
        fmt(cpuPerReq(side, 'sidecar'), 0)
      } us CPU per answer vs fake ${fmt(cpuPerReq(base, 'fake'), 0)} us`
    })
    rows.push({
      metric: `${what} throughput, ${n} conns`,
      unit: 'req/s',
      value: rps,
      baseline: baseRps,
      ratio: ratioOf(rps, baseRps),
      target: '-',
      pass: undefined,
      digits: 0,
      note: c.expect === 'HIT'
        ? `upstream meanwhile: ${sideUnits} full responses, ${upstreamConditional} conditional; one hot URL: concurrent identical GETs share one lookup in the sidecar, which lowers its cost per answer (sidecar GC meanwhile: ${
          side.gc?.major ?? 0
        } major of ${side.gc?.all ?? 0}, ${fmt((side.gc?.seconds ?? 0) * 1000, 0)} ms; p99.9 ${fmt(percentile(lat, 99.9))} ms vs ${
          fmt(percentile(baseLat, 99.9))
        } ms direct)`
        : `upstream meanwhile: ${upstreamConditional} conditional requests answered 304 (concurrent identical requests share one) and ${sideUnits} full responses (rate-limit units) for ${lat.length} answers; direct: ${baseUnits} units`
    })
  }
}

// ---------------------------------------------------------------------------------------
// 9. Per-job replay: rate-limit units with a new token every job
// ---------------------------------------------------------------------------------------

/** The fleet credential of the `replay` upstream (CACHE_API_AUTH); may read acme/private. */
const FLEET = 'ghp_bench_fleet'
/** Private repositories every job token (and the fleet) may read: the job's own repository. */
const JOB_REPOS = ['acme/private']
/** What the jobs send (Octokit's Accept). */
const JOB_ACCEPT = 'application/vnd.github.v3+json'

/** One pass of J jobs against one base URL (a sidecar upstream prefix, or the fake itself). */
interface JobsRun {
  /** Each job's token, `ghs_job<n>_<random>`, added to the fake just before the job. */
  tokens: string[]
  /** Per job, per GET in order: `<status>\n<body>`. */
  answers: string[][]
  /** Per job, per GET: the Link header with `base` removed ('' when none). */
  links: string[][]
  /** Answers by `<status> <X-Cache>` ('-' when absent). */
  cache: Record<string, number>
  /** Rate-limit units each job token spent (its own bucket). */
  jobUnits: number[]
  /** The fleet's units spent so far, read after each job. */
  fleetAfter: number[]
  ms: number
}

async function runJobs (fake: FakeGitHubProcess, base: string, jobs: number, requests: string[]): Promise<JobsRun> {
  const run: JobsRun = { tokens: [], answers: [], links: [], cache: {}, jobUnits: [], fleetAfter: [], ms: 0 }
  const started = performance.now()
  for (let job = 0; job < jobs; job++) {
    const token = `ghs_job${job}_${randomBytes(8).toString('hex')}`
    await fake.addToken(token, { repos: JOB_REPOS })
    run.tokens.push(token)
    const answers: string[] = []
    const links: string[] = []
    // One at a time, in order, as a job's steps do: the counts are the same every run.
    for (const path of requests) {
      const res = await fetch(`${base}${path}`, {
        headers: { accept: JOB_ACCEPT, authorization: `token ${token}` },
        signal: AbortSignal.timeout(30_000)
      })
      const text = await res.text()
      const key = `${res.status} ${res.headers.get('x-cache') ?? '-'}`
      run.cache[key] = (run.cache[key] ?? 0) + 1
      answers.push(`${res.status}\n${text}`)
      links.push((res.headers.get('link') ?? '').split(base).join(''))
    }
    run.answers.push(answers)
    run.links.push(links)
    run.fleetAfter.push(await fake.spent(FLEET))
  }
  run.ms = performance.now() - started
  run.jobUnits = await Promise.all(run.tokens.map(t => fake.spent(t)))
  return run
}

/** Answers of the first `jobs` jobs of `a` that differ from `b`'s (status or body; Link separately). */
function differences (a: JobsRun, b: JobsRun, jobs: number): { answers: number, links: number, first?: string } {
  const out: { answers: number, links: number, first?: string } = { answers: 0, links: 0 }
  const requests = jobRequests()
  for (let job = 0; job < jobs; job++) {
    for (let i = 0; i < requests.length; i++) {
      const x = a.answers[job]?.[i]
      const y = b.answers[job]?.[i]
      if (x !== y) {
        out.answers++
        out.first ??= `job ${job} GET ${requests[i] ?? '?'}: ${(x ?? 'none').slice(0, 120).replace(/\n/g, ' ')} vs direct ${
          (y ?? 'none').slice(0, 120).replace(/\n/g, ' ')
        }`
      }
      if (a.links[job]?.[i] !== b.links[job]?.[i]) out.links++
    }
  }
  return out
}

const sumOf = (xs: number[]): number => xs.reduce((s, x) => s + x, 0)

async function perJobReplayRows (ctx: ApiCtx, cfg: ApiConfig, sidecar: SidecarProcess, fake: FakeGitHubProcess): Promise<void> {
  const { rows, log } = ctx
  const requests = jobRequests()
  const distinct = new Set(requests).size
  const counts = [...new Set(cfg.replayJobs)].sort((a, b) => a - b)
  const most = Math.max(...counts, cfg.replayNoFleetJobs)
  const label = (jobs: number): string => `${jobs} jobs x ${requests.length} GETs`

  // Through the sidecar with the fleet credential: one cold run of the most jobs; the figure
  // for J jobs is its first J jobs (what a run of J jobs from a cold cache spends).
  const fleetBefore = await fake.spent(FLEET)
  const viaFleet = await runJobs(fake, `${sidecar.url}/replay`, Math.max(...counts), requests)
  // The same jobs straight to the fake, with tokens of their own.
  const direct = await runJobs(fake, fake.url, most, requests)
  // The sidecar without a fleet credential (another upstream name, same fake): new job tokens.
  const fleetBeforeNoFleet = await fake.spent(FLEET)
  const noFleet = await runJobs(fake, `${sidecar.url}/replaynofleet`, cfg.replayNoFleetJobs, requests)
  const fleetDuringNoFleet = await fake.spent(FLEET) - fleetBeforeNoFleet

  // Who spent what upstream, from the fake's record of every request.
  const recorded = await fake.requests()
  const upstreamOf = (tokens: string[]): { requests: number, charged: number, notModified: number } => {
    const set = new Set(tokens)
    const mine = recorded.filter(r => set.has(r.token))
    return { requests: mine.length, charged: mine.filter(r => r.charged).length, notModified: mine.filter(r => r.status === 304).length }
  }
  const fleetReqs = recorded.filter(r => r.token === FLEET)
  const fleetCharged = [...new Set(fleetReqs.filter(r => r.charged).map(r => r.path))]
  const fleetUp = {
    requests: fleetReqs.length,
    charged: fleetReqs.filter(r => r.charged).length,
    notModified: fleetReqs.filter(r => r.status === 304).length
  }

  log(
    `API per-job replay: ${requests.length} GETs per job (${distinct} distinct), sequential, Accept ${JOB_ACCEPT}, a new token per job; fleet credential ${FLEET} on upstream "replay", none on "replaynofleet"`
  )
  log(
    `API per-job replay via the sidecar (fleet), ${viaFleet.tokens.length} jobs in ${fmt(viaFleet.ms, 0)} ms: answers ${
      tally(viaFleet.cache)
    }; job tokens' units per job [${viaFleet.jobUnits.join(' ')}]; fleet units after each job [${
      viaFleet.fleetAfter.join(' ')
    }] (before the run: ${fleetBefore}); upstream requests: fleet ${fleetUp.requests} (${fleetUp.charged} charged, ${fleetUp.notModified} answered 304), job tokens ${
      JSON.stringify(upstreamOf(viaFleet.tokens))
    }`
  )
  log(`API per-job replay: fleet paid for ${fleetCharged.length} distinct paths: ${fleetCharged.join(' ')}`)
  log(
    `API per-job replay direct, ${direct.tokens.length} jobs in ${fmt(direct.ms, 0)} ms: answers ${tally(direct.cache)}; units per job [${
      direct.jobUnits.join(' ')
    }]`
  )
  log(
    `API per-job replay via the sidecar without a fleet credential, ${noFleet.tokens.length} jobs in ${fmt(noFleet.ms, 0)} ms: answers ${
      tally(noFleet.cache)
    }; job tokens' units per job [${noFleet.jobUnits.join(' ')}]; upstream requests ${
      JSON.stringify(upstreamOf(noFleet.tokens))
    }; fleet units meanwhile ${fleetDuringNoFleet}`
  )

  const samples: Record<string, unknown> = {
    requests_per_job: requests.length,
    distinct,
    accept: JOB_ACCEPT,
    direct: { jobs: direct.tokens.length, units_per_job: direct.jobUnits, answers: direct.cache, ms: direct.ms },
    fleet: {
      jobs: viaFleet.tokens.length,
      job_units: viaFleet.jobUnits,
      fleet_units_after_job: viaFleet.fleetAfter,
      fleet_units_before: fleetBefore,
      answers: viaFleet.cache,
      ms: viaFleet.ms,
      fleet_upstream: fleetUp,
      fleet_charged_paths: fleetCharged,
      job_upstream: upstreamOf(viaFleet.tokens)
    },
    no_fleet: {
      jobs: noFleet.tokens.length,
      job_units: noFleet.jobUnits,
      answers: noFleet.cache,
      ms: noFleet.ms,
      job_upstream: upstreamOf(noFleet.tokens),
      fleet_units_meanwhile: fleetDuringNoFleet
    },
    rows: [] as unknown[]
  }
  ctx.samples['api_per_job_replay'] = samples

  let previous: { jobs: number, ratio: number } | undefined
  for (const jobs of counts) {
    const jobUnits = viaFleet.jobUnits.slice(0, jobs)
    const fleetUnits = viaFleet.fleetAfter[jobs - 1] ?? NaN
    const units = sumOf(jobUnits) + fleetUnits
    const baseUnits = sumOf(direct.jobUnits.slice(0, jobs))
    const ratio = ratioOf(units, baseUnits)
    const diff = differences(viaFleet, direct, jobs)
    if (diff.answers > 0) {
      log(`API per-job replay, ${jobs} jobs: WARNING ${diff.answers} answers differ from direct; first: ${diff.first ?? ''}`)
    }
    if (diff.links > 0) log(`API per-job replay, ${jobs} jobs: WARNING ${diff.links} Link headers differ from direct (origin removed)`)
    const target = previous === undefined ? 'ratio ≤ 0.3' : `ratio < ${fmt(previous.ratio, 3)} (${previous.jobs} jobs)`
    const meets = previous === undefined ? ratio <= 0.3 : ratio < previous.ratio
    ;(samples.rows as unknown[]).push({
      jobs,
      units,
      direct_units: baseUnits,
      job_units: sumOf(jobUnits),
      fleet_units: fleetUnits,
      answers_differing: diff.answers,
      links_differing: diff.links
    })
    rows.push({
      metric: `API per-job replay, ${label(jobs)}: rate-limit units`,
      unit: 'count',
      value: units,
      baseline: baseUnits,
      ratio,
      target,
      pass: meets && diff.answers === 0,
      digits: 0,
      note:
        `units through the sidecar = job tokens ${sumOf(jobUnits)} (max ${
          Math.max(...jobUnits)
        } per job) + fleet credential ${fleetUnits}, ${distinct} distinct resources; ` +
        `a new token per job (repos: ${
          JOB_REPOS.join(', ')
        }), CACHE_API_AUTH for the upstream; every copy stale by the next GET (max-age 0): the fleet revalidates with its own ETag; baseline: the same jobs straight to the fake with tokens of their own (one unit per GET); ` +
        `${
          previous === undefined ? 'from a cold cache' : `the first ${previous.jobs} jobs are the row above`
        }; answers differing from direct (status or body): ${diff.answers}${
          diff.links > 0 ? `, Link headers differing: ${diff.links}` : ''
        }`
    })
    previous = { jobs, ratio }
  }

  const jobs = noFleet.tokens.length
  const units = sumOf(noFleet.jobUnits) + fleetDuringNoFleet
  const baseUnits = sumOf(direct.jobUnits.slice(0, jobs))
  const diff = differences(noFleet, direct, jobs)
  if (diff.answers > 0) {
    log(`API per-job replay without a fleet credential: WARNING ${diff.answers} answers differ from direct; first: ${diff.first ?? ''}`)
  }
  ;(samples.rows as unknown[]).push({
    jobs,
    no_fleet: true,
    units,
    direct_units: baseUnits,
    answers_differing: diff.answers,
    links_differing: diff.links
  })
  rows.push({
    metric: `API per-job replay, ${label(jobs)}, no fleet credential: rate-limit units`,
    unit: 'count',
    value: units,
    baseline: baseUnits,
    ratio: ratioOf(units, baseUnits),
    target: '-',
    pass: undefined,
    digits: 0,
    note:
      `the same jobs (new tokens) through the same sidecar on an upstream without CACHE_API_AUTH, from a cold cache: job tokens ${
        sumOf(noFleet.jobUnits)
      } (${Math.min(...noFleet.jobUnits)}..${Math.max(...noFleet.jobUnits)} per job), fleet ${fleetDuringNoFleet}; ` +
      `each job's token pays for what its own ETags can't revalidate (lists carry no Last-Modified); answers differing from direct: ${diff.answers}${
        diff.links > 0 ? `, Link headers differing: ${diff.links}` : ''
      }`
  })
}
