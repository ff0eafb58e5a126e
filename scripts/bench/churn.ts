/**
 * The churn soak (issue 16) as a bench section: 5 sidecar processes in one private swarm and the
 * real docker-registry, random pulls of 6 images through random nodes for `durationMs` while 3
 * nodes are SIGKILLed and restarted and the upstream is stopped and started (the driver is
 * test/fixtures/churn.ts, shared with test/reliability/churn.test.ts, which runs it for 70 s;
 * the bench runs it longer). It judges nothing: it returns the figures for the report.
 *
 * Run alone: `node --import tsx scripts/bench/churn.ts [durationMs] [seed]` (after
 * `npm run build`) prints the figures as JSON.
 */
import { fileURLToPath } from 'node:url'
import { churnFigures, runChurn, type ChurnFigures as RunFigures } from '../../test/fixtures/churn.js'

export interface ChurnFigures extends RunFigures {
  /** Wall time of the whole section, set-up and store checks included (ms). */
  wallMs: number
  /** Per node, every sample of the run: ms since the churn began, VmRSS (MB), open fds. */
  timeline: Record<string, Array<{ tMs: number, rssMB: number, fds: number }>>
  /** Which nodes were never killed (their RSS and fds are the leak signal). */
  stableNodes: string[]
}

/**
 * Runs the churn soak for `opts.durationMs` with `opts.seed` and returns its figures: pulls
 * attempted / succeeded / failed by reason (allowed or fault), corrupt bytes served, restarts
 * survived, upstream outages, crashes, peak RSS and fds per node and over time, store checks.
 * Throws only when the set-up fails (registry, image push, swarm start).
 */
export async function churnSoak (opts: { durationMs: number, seed: number, log?: (line: string) => void }): Promise<ChurnFigures> {
  const t0 = Date.now()
  const result = await runChurn({ durationMs: opts.durationMs, seed: opts.seed, ...(opts.log !== undefined ? { log: opts.log } : {}) })
  const timeline: ChurnFigures['timeline'] = {}
  for (const s of result.samples) {
    const line = timeline[s.node] ?? []
    line.push({ tMs: s.t, rssMB: Math.round(s.rssKiB / 1024 * 10) / 10, fds: s.fds })
    timeline[s.node] = line
  }
  return { ...churnFigures(result), wallMs: Date.now() - t0, timeline, stableNodes: result.stable }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const durationMs = Number(process.argv[2] ?? 300_000)
  const seed = Number(process.argv[3] ?? 16)
  const figures = await churnSoak({
    durationMs,
    seed,
    log: line => {
      process.stderr.write(`${line}\n`)
    }
  })
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`)
}
