/**
 * The reliability campaign's figures (issue 16), as bench rows: the churn soak (churn.ts), the
 * overload campaign (overload.ts) and the long fuzzing run (fuzz.ts). Each runs on its own
 * registry and sidecars. The rows state what must hold (0 corrupt bytes, 0 disallowed failures,
 * 0 crashes, 0 fuzz failures) as targets; the rest are figures with their notes.
 */
import { churnSoak } from './churn.js'
import { fuzzCampaign } from './fuzz.js'
import { overloadCampaign } from './overload.js'
import type { Row } from './report.js'

export interface ReliabilityConfig {
  churnMs: number
  churnSeed: number
  connections: number
  slowReaders: number
  /** Cases per fuzz target (the CLI target runs a fiftieth). */
  fuzzRuns: number
}

export function reliabilityConfig (quick: boolean): ReliabilityConfig {
  return {
    churnMs: Number(process.env.BENCH_CHURN_MS ?? (quick ? 60_000 : 300_000)),
    churnSeed: Number(process.env.BENCH_SEED ?? 7),
    connections: 1000,
    slowReaders: 20,
    fuzzRuns: Number(process.env.BENCH_FUZZ_RUNS ?? (quick ? 500 : 2500))
  }
}

interface Ctx {
  rows: Row[]
  samples: Record<string, unknown>
  log: (line: string) => void
}

/** A row whose value must be zero. */
function mustBeZero (metric: string, value: number, note?: string): Row {
  return {
    metric,
    unit: 'count',
    value,
    baseline: undefined,
    ratio: undefined,
    target: '= 0',
    pass: value === 0,
    digits: 0,
    ...(note !== undefined ? { note } : {})
  }
}

/** A figure without a target. */
function figure (metric: string, unit: string, value: number, digits = 0, note?: string): Row {
  return {
    metric,
    unit,
    value,
    baseline: undefined,
    ratio: undefined,
    target: '-',
    pass: undefined,
    digits,
    ...(note !== undefined ? { note } : {})
  }
}

/** The churn soak: pulls, failures by reason, corrupt bytes, restarts, RSS and fds over time. */
export async function churnRows (ctx: Ctx, cfg: ReliabilityConfig): Promise<void> {
  const f = await churnSoak({ durationMs: cfg.churnMs, seed: cfg.churnSeed, log: ctx.log })
  ctx.samples.churn = f
  const reasons = Object.entries(f.failedByReason).map(([k, v]) => `${k}: ${v.allowed} allowed${v.fault > 0 ? `, ${v.fault} FAULT` : ''}`)
    .join('; ')
  ctx.rows.push({
    metric: `churn ${Math.round(cfg.churnMs / 1000)} s: pulls succeeded / attempted`,
    unit: 'pulls',
    value: f.pulls.succeeded,
    baseline: f.pulls.attempted,
    ratio: f.pulls.succeeded / f.pulls.attempted,
    target: '-',
    pass: undefined,
    digits: 0,
    note: `seed ${f.seed}; skopeo ${f.pulls.skopeoSucceeded}/${f.pulls.skopeo}; failed: ${reasons === '' ? 'none' : reasons}; answers ${
      JSON.stringify(f.cache)
    }`
  })
  ctx.rows.push(mustBeZero('churn: failures not explained by a killed node or an upstream outage', f.faults))
  ctx.rows.push(mustBeZero('churn: corrupt bytes served', f.corruptBytesServed))
  ctx.rows.push(mustBeZero('churn: sidecar crashes (exits not caused by the test)', f.crashes))
  ctx.rows.push(
    figure(
      'churn: SIGKILLs survived (restarted and serving)',
      'restarts',
      f.restarts.survived,
      0,
      `${f.restarts.killed} killed, ${f.upstreamOutages} upstream outages`
    )
  )
  ctx.rows.push(
    mustBeZero(
      'churn: store files not matching their digest after the run',
      f.stores.wrongFiles,
      `${f.stores.files} files; reopen removed ${f.stores.reopenedRemovedFiles} files, ${f.stores.reopenedRemovedRecords} records; after kills: ${f.stores.tmpRemovedAfterKill} tmp files removed, ${f.stores.orphansIndexedAfterKill} orphans indexed`
    )
  )
  for (const node of f.stableNodes) {
    const m = f.memory[node]
    if (m === undefined) continue
    ctx.rows.push(
      figure(
        `churn: ${node} (never killed) RSS, first third → last third`,
        'MB',
        m.lastRssMB,
        0,
        `first ${m.firstRssMB.toFixed(0)} MB, peak ${
          m.peakRssMB.toFixed(0)
        } MB; fds ${m.firstFds} → ${m.lastFds} (peak ${m.peakFds}); ${m.samples} samples`
      )
    )
  }
}

/** The overload campaign: held connections, slow readers, timeouts, memory per connection. */
export async function overloadRows (ctx: Ctx, cfg: ReliabilityConfig): Promise<void> {
  const f = await overloadCampaign({ connections: cfg.connections, slowReaders: cfg.slowReaders })
  ctx.samples.overload = f
  ctx.rows.push({
    metric: `overload: requests served while ${f.connectionsHeld} connections are held`,
    unit: 'requests',
    value: f.served,
    baseline: f.served + f.servedFailed,
    ratio: f.served / (f.served + f.servedFailed),
    target: '= 1',
    pass: f.servedFailed === 0,
    digits: 0,
    note: `p50 ${f.servedP50Ms.toFixed(1)} ms, p99 ${
      f.servedP99Ms.toFixed(1)
    } ms; limits header ${f.limits.headerTimeoutMs} ms, idle ${f.limits.idleTimeoutMs} ms, stall ${f.limits.stallTimeoutMs} ms`
  })
  ctx.rows.push(figure('overload: RSS per held connection (upper bound)', 'KiB', f.rssPerConnectionKiB, 1))
  ctx.rows.push(
    mustBeZero(
      'overload: held connections the server never closed',
      f.notClosedByServer,
      `${f.closedByHeaderTimeout408} got 408 at the header timeout, ${f.closedByIdleTimeout} closed at the idle timeout`
    )
  )
  ctx.rows.push({
    metric: `overload: ${f.slowReaders} stalled readers of a 64 MiB blob cut`,
    unit: 'readers',
    value: f.slowReadersCut,
    baseline: f.slowReaders,
    ratio: f.slowReadersCut / f.slowReaders,
    target: '= 1',
    pass: f.slowReadersCut === f.slowReaders,
    digits: 0,
    note: `dropped ${
      f.slowReadersDroppedAfterMs === null ? 'never' : `after ${(f.slowReadersDroppedAfterMs / 1000).toFixed(1)} s`
    }; RSS grew ${f.slowReadersRssGrowthMiB.toFixed(0)} MiB meanwhile; another client got the whole blob in ${f.wholeBlobMs} ms`
  })
}

/** The long fuzzing run: cases per target, failures (each with its shrunk counterexample). */
export async function fuzzRows (ctx: Ctx, cfg: ReliabilityConfig): Promise<void> {
  const f = await fuzzCampaign({ runs: cfg.fuzzRuns, seed: cfg.churnSeed })
  ctx.samples.fuzz = f
  const targets = Object.entries(f.targets)
  const cases = targets.reduce((n, [, t]) => n + t.cases, 0)
  const failed = targets.filter(([, t]) => t.failed)
  ctx.rows.push(
    mustBeZero(
      `fuzz: targets failing (${cases} cases, seed ${f.seed})`,
      f.failures,
      `${targets.map(([name, t]) => `${name} ${t.cases} in ${(t.durationMs / 1000).toFixed(0)} s`).join(', ')}${
        failed.map(([name, t]) => `; ${name} FAILED: ${t.error ?? ''} on ${t.counterexample ?? ''}`).join('')
      }`
    )
  )
}
