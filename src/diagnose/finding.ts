/** ✓ / ! / ✗ (and – for a check that could not apply, e.g. no bootstrap peer given). */
export type Verdict = 'ok' | 'warn' | 'fail' | 'skip'

/**
 * One check's result. `check` is a stable id (`environment.network`, `bootstrap.dial`...);
 * `subject` names what was checked when a check runs more than once (a bootstrap address);
 * `fix` is the exact flag or variable to change, present for every warn and fail; `facts` are
 * the observations the verdict rests on, for machines (`--json`) and for bug reports.
 */
export interface Finding {
  check: string
  verdict: Verdict
  summary: string
  subject?: string
  fix?: string
  facts?: Record<string, unknown>
}

export function ok (check: string, summary: string, facts?: Record<string, unknown>, subject?: string): Finding {
  return { check, verdict: 'ok', summary, ...(subject !== undefined ? { subject } : {}), ...(facts !== undefined ? { facts } : {}) }
}

export function warn (check: string, summary: string, fix: string, facts?: Record<string, unknown>, subject?: string): Finding {
  return { check, verdict: 'warn', summary, fix, ...(subject !== undefined ? { subject } : {}), ...(facts !== undefined ? { facts } : {}) }
}

export function fail (check: string, summary: string, fix: string, facts?: Record<string, unknown>, subject?: string): Finding {
  return { check, verdict: 'fail', summary, fix, ...(subject !== undefined ? { subject } : {}), ...(facts !== undefined ? { facts } : {}) }
}

export function skip (check: string, summary: string, subject?: string): Finding {
  return { check, verdict: 'skip', summary, ...(subject !== undefined ? { subject } : {}) }
}
