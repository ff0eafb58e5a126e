/**
 * The HTTP API cache rows of `npm run bench` (SPEC section 6: "API cache hit: p99 < 5 ms under
 * load; upstream requests for a repeated GET drop to conditional ones that cost no rate limit"):
 *
 *   7. cache-hit latency under concurrent load: one sidecar (P2P off) in front of the fake
 *      api.github.com (test/fixtures/fake-github.ts); an anonymous, `public, max-age=60`
 *      resource is warmed, then autocannon drives it with `connections` keep-alive connections.
 *      p50 and p99 of the X-Cache: HIT answers and requests/s, against the same load straight
 *      on the fake in the same run;
 *   8. the same for an authenticated (`private`) resource, which the sidecar answers
 *      REVALIDATED: every answer rests on a conditional request upstream (304, no rate limit);
 *   9. a fixed, seeded workload of GETs over ~10 resources, anonymous and three tokens, replayed
 *      twice through a cold sidecar: upstream requests, full (non-304) upstream responses and
 *      rate-limit units spent, against the same workload straight to the fake (one unit each).
 *
 * The fake runs in a process of its own (test/fixtures/fake-github-proc.ts), so neither the upstream nor the
 * baseline shares an event loop with the load generator, which runs in the bench process.
 * Latencies are autocannon's per-response times (request written → response complete), kept
 * per X-Cache value: only answers of the expected kind (HIT, REVALIDATED) count for the
 * sidecar, only 200s for the baseline; the rest are counted and reported.
 *
 * BENCH_API_CONNECTIONS changes the connection count (default 50); BENCH_API_SEED the replayed
 * workload (default 1, so runs replay the same requests).
 */
import { mkdir, rm } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import { startFakeGitHubProcess, type FakeGitHubProcess } from '../../test/fixtures/fake-github-child.js'
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
  /** Row 9: requests in the workload, and how often it is replayed. */
  replayRequests: number
  replayRounds: number
  seed: number
}

export function apiConfig (quick: boolean): ApiConfig {
  return {
    connections: Number(process.env.BENCH_API_CONNECTIONS ?? '50'),
    loadSeconds: quick ? 4 : 10,
    warmSeconds: quick ? 0.5 : 1,
    replayRequests: 200,
    replayRounds: 2,
    seed: Number(process.env.BENCH_API_SEED ?? '1')
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
  if (x.gc !== undefined) into.gc = into.gc === undefined ? x.gc : { major: into.gc.major + x.gc.major, all: into.gc.all + x.gc.all, seconds: into.gc.seconds + x.gc.seconds }
}

async function drive (url: string, headers: Record<string, string>, seconds: number, connections: number, watch: Record<string, number>, sidecarUrl?: string): Promise<Load> {
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
      ee.on('headers', (info: unknown) => { cache = headerOf(info, 'x-cache') ?? '-' })
      ee.on('response', (status: number, _bytes: number, ms: number) => {
        load.responses++
        const key = `${status} ${cache}`
        load.answers[key] = (load.answers[key] ?? 0) + 1
        if (status === 200) {
          let list = load.ok.get(cache)
          if (list === undefined) { list = []; load.ok.set(cache, list) }
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
const tally = (counts: Record<string, number>): string => Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'

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
    // (counts come from the rate-limit buckets and the sidecar's stats). Row 9: the defaults
    // (5000 per bucket), every request recorded.
    const [loadFake, replayFake] = await Promise.all([startFakeGitHubProcess({ rateLimit: 1e12 }, { clearMs: 200 }), startFakeGitHubProcess({})])
    local.add('API fake (load)', loadFake.stop)
    local.add('API fake (replay)', replayFake.stop)
    const dir = join(work, 'api-sidecar')
    await mkdir(dir, { recursive: true })
    local.add('API sidecar dir', () => rm(dir, { recursive: true, force: true }))
    const sidecar = await startSidecar({
      CACHE_API_UPSTREAMS: `bench=${loadFake.url},replay=${replayFake.url}`,
      CACHE_ENABLE_P2P: 'false',
      CACHE_LOG_LEVEL: 'warn'
    }, { dir })
    local.add('API sidecar', () => sidecar.destroy())
    const sidecarPid = sidecar.proc.child.pid
    if (sidecarPid === undefined) throw new Error('sidecar has no pid')
    log(`API: fake api.github.com ${loadFake.url} (pid ${loadFake.pid}) and ${replayFake.url} (pid ${replayFake.pid}), sidecar ${sidecar.url} (pid ${sidecarPid})`)

    await loadRows(ctx, cfg, sidecar, sidecarPid, loadFake)
    await replayRows(ctx, cfg, sidecar, replayFake)

    const warnings = sidecar.logs().filter(l => { const m = /"level":(\d+)/.exec(l); return m !== null && Number(m[1]) >= 40 })
    ctx.samples['api_sidecar_warnings'] = warnings.slice(-20)
    if (warnings.length > 0) log(`API: sidecar logged ${warnings.length} warnings, last: ${warnings[warnings.length - 1]?.slice(0, 300) ?? ''}`)
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
  if (direct.text !== second.text) throw new Error('API warm-up: the HIT body differs from the fake\'s')

  interface Case { key: string, label: string, token?: string, expect: 'HIT' | 'REVALIDATED' }
  const cases: Case[] = [
    { key: 'hit', label: 'anonymous public GET, X-Cache HIT', expect: 'HIT' },
    { key: 'revalidated', label: 'authenticated GET (alice), X-Cache REVALIDATED', token: 'alice', expect: 'REVALIDATED' }
  ]
  for (const c of cases) {
    const headers: Record<string, string> = { accept: ACCEPT, ...(c.token === undefined ? {} : { authorization: `token ${c.token}` }) }
    const bucket = c.token ?? 'anon'
    if (c.token !== undefined) {
      const once = await get(`${sidecar.url}/bench${path}`, headers)
      if (once.status !== 200 || once.cache !== c.expect) throw new Error(`API ${c.key}: expected 200 ${c.expect}, got ${once.status} ${once.cache}`)
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
    await runSide(); await runBase(); await runBase(); await runSide()
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
    log(`API ${c.key}: sidecar ${lat.length} ${c.expect} answers in ${fmt(side.seconds, 1)} s (${fmt(rps, 0)}/s), p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, max ${fmt(maxOf(lat))} ms; ` +
      `direct ${baseLat.length} in ${fmt(base.seconds, 1)} s (${fmt(baseRps, 0)}/s), p50 ${fmt(b50)} ms, p99 ${fmt(b99)} ms`)
    log(`API ${c.key}: sidecar answers: ${tally(side.answers)}; errors ${side.errors}, timeouts ${side.timeouts}; direct answers: ${tally(base.answers)}, errors ${base.errors}`)
    log(`API ${c.key}: CPU share of a core while loading the sidecar: ${cpuShare(side)}; direct: ${cpuShare(base)}; sidecar ${fmt(cpuPerReq(side, 'sidecar'), 0)} us CPU per answer, fake ${fmt(cpuPerReq(base, 'fake'), 0)} us; sidecar GC ${side.gc?.major ?? 0} major of ${side.gc?.all ?? 0}, ${fmt((side.gc?.seconds ?? 0) * 1000, 0)} ms; sidecar RSS ${fmt(rss0 / MB, 0)} -> ${fmt(rss1 / MB, 0)} MB`)
    log(`API ${c.key}: upstream during the sidecar runs: ${sideUnits} rate-limit units (full responses), ${upstreamConditional} conditional requests answered 304; direct: ${baseUnits} units; sidecar stats: hits +${d('hits')}, misses +${d('misses')}, errors +${d('errors')}`)
    ctx.samples[`api_${c.key}`] = {
      connections: n,
      sidecar: { answers: side.answers, seconds: side.seconds, per_s: rps, p50_ms: p50, p90_ms: percentile(lat, 90), p99_ms: p99, p999_ms: percentile(lat, 99.9), max_ms: maxOf(lat), errors: side.errors, timeouts: side.timeouts, cpu_s: side.cpu, gc: side.gc },
      direct: { answers: base.answers, seconds: base.seconds, per_s: baseRps, p50_ms: b50, p90_ms: percentile(baseLat, 90), p99_ms: b99, p999_ms: percentile(baseLat, 99.9), max_ms: maxOf(baseLat), errors: base.errors, timeouts: base.timeouts, cpu_s: base.cpu },
      upstream: { sidecar_rate_limit_units: sideUnits, sidecar_conditional_304: upstreamConditional, direct_rate_limit_units: baseUnits },
      sidecar_rss: { before: rss0, after: rss1 },
      sidecar_stats_delta: { hits: d('hits'), misses: d('misses'), errors: d('errors'), revalidations_304: upstreamConditional }
    }

    const what = c.expect === 'HIT' ? 'API cache hit' : 'API authenticated GET (REVALIDATED)'
    const othersNote = others > 0 ? `; ${others} other answers not counted (${tally(side.answers)})` : ''
    const closedLoop = `closed loop, ${n} keep-alive connections for ${fmt(side.seconds, 1)} s per side, interleaved: latency ~ ${n} / (answers/s), so it is mostly the server's throughput`
    rows.push({
      metric: `${what} p50, ${n} conns`, unit: 'ms', value: p50, baseline: b50, ratio: ratioOf(p50, b50),
      target: '-', pass: undefined, digits: 2,
      note: `${lat.length} ${c.expect} answers${othersNote}; baseline: the same load straight on the fake api.github.com (own process); ${closedLoop}`
    })
    rows.push({
      metric: `${what} p99, ${n} conns`, unit: 'ms', value: p99, baseline: b99, ratio: ratioOf(p99, b99),
      target: c.expect === 'HIT' ? 'value < 5 ms' : '-', pass: c.expect === 'HIT' ? p99 < 5 : undefined, digits: 2,
      note: `CPU share of a core meanwhile: ${cpuShare(side)} (direct: ${cpuShare(base)}) on ${cpus().length} CPUs; sidecar ${fmt(cpuPerReq(side, 'sidecar'), 0)} us CPU per answer vs fake ${fmt(cpuPerReq(base, 'fake'), 0)} us`
    })
    rows.push({
      metric: `${what} throughput, ${n} conns`, unit: 'req/s', value: rps, baseline: baseRps, ratio: ratioOf(rps, baseRps),
      target: '-', pass: undefined, digits: 0,
      note: c.expect === 'HIT'
        ? `upstream meanwhile: ${sideUnits} full responses, ${upstreamConditional} conditional; one hot URL: concurrent identical GETs share one lookup in the sidecar, which lowers its cost per answer (sidecar GC meanwhile: ${side.gc?.major ?? 0} major of ${side.gc?.all ?? 0}, ${fmt((side.gc?.seconds ?? 0) * 1000, 0)} ms; p99.9 ${fmt(percentile(lat, 99.9))} ms vs ${fmt(percentile(baseLat, 99.9))} ms direct)`
        : `upstream meanwhile: ${upstreamConditional} conditional requests answered 304 (concurrent identical requests share one) and ${sideUnits} full responses (rate-limit units) for ${lat.length} answers; direct: ${baseUnits} units`
    })
  }
}

// ---------------------------------------------------------------------------------------
// 9. A replayed workload: upstream requests and rate limit
// ---------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so the workload is the same every run (BENCH_API_SEED). */
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

interface Resource { path: string, weight: number, body?: unknown, private?: boolean }

const RESOURCES: Resource[] = [
  { path: '/repos/acme/public', weight: 30 },
  { path: '/repos/acme/private', weight: 8, private: true },
  { path: '/repos/acme/public/issues?page=1&per_page=2', weight: 15 },
  { path: '/repos/acme/public/issues?page=2&per_page=2', weight: 8 },
  { path: '/repos/acme/public/issues?page=3&per_page=2', weight: 5 },
  { path: '/repos/acme/tools', weight: 10, body: { id: 3, name: 'tools', full_name: 'acme/tools', private: false, default_branch: 'main' } },
  { path: '/repos/acme/docs', weight: 6, body: { id: 4, name: 'docs', full_name: 'acme/docs', private: false, default_branch: 'main' } },
  { path: '/orgs/acme', weight: 8, body: { login: 'acme', id: 100, type: 'Organization', public_repos: 3 } },
  { path: '/users/octocat', weight: 5, body: { login: 'octocat', id: 1, type: 'User' } },
  { path: '/repos/acme/public/releases/latest', weight: 5, body: { id: 77, tag_name: 'v1.2.3', name: 'v1.2.3', draft: false, prerelease: false } }
]
/** Who asks: anonymous, and three tokens (bob may not see acme/private, so never asks for it). */
const SCOPES: Array<{ token: string | undefined, weight: number }> = [
  { token: undefined, weight: 40 }, { token: 'alice', weight: 25 }, { token: 'bob', weight: 20 }, { token: 'carol', weight: 15 }
]
const BUCKETS = ['anon', 'alice', 'bob', 'carol']

interface Get { path: string, token: string | undefined }

function workload (count: number, seed: number): Get[] {
  const rand = prng(seed)
  const pick = <T extends { weight: number }>(xs: T[]): T => {
    let r = rand() * xs.reduce((s, x) => s + x.weight, 0)
    for (const x of xs) { r -= x.weight; if (r < 0) return x }
    return xs[xs.length - 1] as T
  }
  return Array.from({ length: count }, () => {
    const res = pick(RESOURCES)
    const scopes = res.private === true ? SCOPES.filter(s => s.token === 'alice' || s.token === 'carol') : SCOPES
    return { path: res.path, token: pick(scopes).token }
  })
}

interface Upstream { requests: number, full: number, notModified: number, conditional: number, units: number }

async function upstreamSnapshot (fake: FakeGitHubProcess): Promise<Upstream> {
  const [requests, notModified, conditional, ...remaining] = await Promise.all([
    fake.count(), fake.count({ status: 304 }), fake.count({ conditional: true }), ...BUCKETS.map(b => fake.rateLimit(b))
  ])
  // `units` here is the remaining total; deltas turn it into units spent.
  return { requests, full: requests - notModified, notModified, conditional, units: remaining.reduce((s, x) => s + x, 0) }
}

function spent (a: Upstream, b: Upstream): Upstream {
  return { requests: b.requests - a.requests, full: b.full - a.full, notModified: b.notModified - a.notModified, conditional: b.conditional - a.conditional, units: a.units - b.units }
}

async function replayRows (ctx: ApiCtx, cfg: ApiConfig, sidecar: SidecarProcess, fake: FakeGitHubProcess): Promise<void> {
  const { rows, log } = ctx
  for (const r of RESOURCES) if (r.body !== undefined) await fake.setBody(r.path, r.body)
  const gets = workload(cfg.replayRequests, cfg.seed)
  const distinct = new Set(gets.map(g => `${g.path} ${g.token ?? 'anon'}`)).size
  const headersOf = (g: Get): Record<string, string> => ({ accept: ACCEPT, ...(g.token === undefined ? {} : { authorization: `token ${g.token}` }) })

  const replay = async (base: string): Promise<{ up: Upstream[], answers: Array<Record<string, number>>, texts: string[][], ms: number }> => {
    const up: Upstream[] = []
    const answers: Array<Record<string, number>> = []
    const texts: string[][] = []
    const started = performance.now()
    for (let round = 0; round < cfg.replayRounds; round++) {
      const before = await upstreamSnapshot(fake)
      const tallyOf: Record<string, number> = {}
      const bodies: string[] = []
      // One at a time, in order: the counts are exact and the same every run.
      for (const g of gets) {
        const r = await get(`${base}${g.path}`, headersOf(g))
        const key = `${r.status} ${r.cache}`
        tallyOf[key] = (tallyOf[key] ?? 0) + 1
        bodies.push(`${r.status} ${r.text}`)
      }
      up.push(spent(before, await upstreamSnapshot(fake)))
      answers.push(tallyOf)
      texts.push(bodies)
    }
    return { up, answers, texts, ms: performance.now() - started }
  }
  const viaSidecar = await replay(`${sidecar.url}/replay`)
  const direct = await replay(fake.url)
  let differing = 0
  for (let round = 0; round < cfg.replayRounds; round++) {
    const a = viaSidecar.texts[round] ?? []
    const b = direct.texts[round] ?? []
    for (let i = 0; i < gets.length; i++) if (a[i] !== b[i]) differing++
  }
  const sum = (xs: Upstream[], k: keyof Upstream): number => xs.reduce((s, x) => s + x[k], 0)
  const perRound = (xs: Upstream[], k: keyof Upstream): string => xs.map(x => x[k]).join(' + ')
  const label = `${cfg.replayRequests} GETs x${cfg.replayRounds}`
  for (let round = 0; round < cfg.replayRounds; round++) {
    const s = viaSidecar.up[round]
    const dr = direct.up[round]
    log(`API replay round ${round + 1}: sidecar answers ${tally(viaSidecar.answers[round] ?? {})}; upstream ${s?.requests ?? '?'} requests (${s?.full ?? '?'} full, ${s?.notModified ?? '?'} 304, ${s?.conditional ?? '?'} conditional), ${s?.units ?? '?'} rate-limit units; direct: ${dr?.requests ?? '?'} requests, ${dr?.units ?? '?'} units`)
  }
  log(`API replay: ${gets.length} GETs over ${RESOURCES.length} resources, ${distinct} distinct (resource, scope) pairs, seed ${cfg.seed}; sidecar ${fmt(viaSidecar.ms, 0)} ms, direct ${fmt(direct.ms, 0)} ms; answers differing from direct: ${differing}`)
  ctx.samples['api_replay'] = {
    requests: gets.length, rounds: cfg.replayRounds, resources: RESOURCES.length, distinct_pairs: distinct, seed: cfg.seed,
    sidecar: { upstream: viaSidecar.up, answers: viaSidecar.answers, ms: viaSidecar.ms },
    direct: { upstream: direct.up, ms: direct.ms },
    answers_differing_from_direct: differing
  }
  const last = viaSidecar.up[viaSidecar.up.length - 1]
  const mix = `seeded workload (BENCH_API_SEED=${cfg.seed}) over ${RESOURCES.length} resources, anonymous + alice/bob/carol, ${distinct} distinct (resource, scope) pairs, sequential; per round: `
  const reqs = sum(viaSidecar.up, 'requests')
  const baseReqs = sum(direct.up, 'requests')
  rows.push({
    metric: `API replay ${label}: upstream requests`, unit: 'count', value: reqs, baseline: baseReqs, ratio: ratioOf(reqs, baseReqs),
    target: '-', pass: undefined, digits: 0,
    note: `${mix}${perRound(viaSidecar.up, 'requests')} (of which conditional ${perRound(viaSidecar.up, 'conditional')}, answered 304 ${perRound(viaSidecar.up, 'notModified')}); sidecar answers ${viaSidecar.answers.map(a => `[${tally(a)}]`).join(' then ')}; baseline: the same GETs straight to the fake`
  })
  const full = sum(viaSidecar.up, 'full')
  const baseFull = sum(direct.up, 'full')
  rows.push({
    metric: `API replay ${label}: upstream full (non-304) responses`, unit: 'count', value: full, baseline: baseFull, ratio: ratioOf(full, baseFull),
    target: 'last round = 0', pass: last !== undefined && last.full === 0 && differing === 0, digits: 0,
    note: `per round: ${perRound(viaSidecar.up, 'full')}; answers differing from direct (status or body): ${differing}`
  })
  const units = sum(viaSidecar.up, 'units')
  const baseUnits = sum(direct.up, 'units')
  rows.push({
    metric: `API replay ${label}: rate-limit units spent`, unit: 'count', value: units, baseline: baseUnits, ratio: ratioOf(units, baseUnits),
    target: 'last round = 0', pass: last !== undefined && last.units === 0, digits: 0,
    note: `per round: ${perRound(viaSidecar.up, 'units')} (X-RateLimit-Remaining of the anon, alice, bob, carol buckets); direct: one unit per GET`
  })
}
