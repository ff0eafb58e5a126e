import type { Logger } from 'pino'
import type { Config } from '../config/options.js'
import { diagnose } from '../diagnose/run.js'
import type { ReachabilityFinding, ReachabilitySource, ReachabilityView } from '../ui/status.js'
import { REACHABILITY_TTL_MS } from './constants.js'

const ORDER: Record<ReachabilityFinding['verdict'], number> = { fail: 0, warn: 1, skip: 2, ok: 3 }

/**
 * The status page's reachability verdict: diagnose's reachability checks (listen addresses,
 * bootstrap peers, dial-back, the DHT; `scope: 'reachability'`) run in this process against this
 * sidecar, at most once per REACHABILITY_TTL_MS and only when a page asks, one run at a time:
 * looking at the page never reruns the network checks on every update.
 */
export class Reachability implements ReachabilitySource {
  private view: ReachabilityView
  private checkedAt = 0
  private running: Promise<void> | undefined

  constructor (private readonly config: Config, private readonly httpUrl: () => string | undefined, private readonly log: Logger) {
    this.view = config.enableP2p
      ? { state: 'checking', verdict: undefined, checkedAt: undefined, findings: [] }
      : { state: 'off', verdict: undefined, checkedAt: undefined, findings: [] }
  }

  current (): ReachabilityView {
    if (this.config.enableP2p && this.running === undefined && Date.now() - this.checkedAt > REACHABILITY_TTL_MS) {
      this.running = this.run().finally(() => {
        this.running = undefined
      })
    }
    return this.view
  }

  /** Waits for a run in progress (shutdown: its probe node stops before the process exits). */
  async stop (): Promise<void> {
    await this.running
  }

  private async run (): Promise<void> {
    this.checkedAt = Date.now()
    const http = this.httpUrl()
    try {
      const report = await diagnose(this.config, { scope: 'reachability', ...(http !== undefined ? { http } : {}) })
      const findings = report.findings.filter(f => f.verdict !== 'ok').sort((a, b) => ORDER[a.verdict] - ORDER[b.verdict])
      const verdict = report.counts.fail > 0 ? 'fail' : report.counts.warn > 0 ? 'warn' : 'ok'
      this.view = {
        state: 'done',
        verdict,
        checkedAt: report.startedAt,
        findings: findings.map(f => ({
          check: f.check,
          verdict: f.verdict,
          summary: f.summary,
          ...(f.subject !== undefined ? { subject: f.subject } : {}),
          ...(f.fix !== undefined ? { fix: f.fix } : {})
        }))
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'status page: the reachability checks failed')
      this.view = { state: 'error', verdict: undefined, checkedAt: new Date(this.checkedAt).toISOString(), findings: [] }
    }
  }
}
