import type { Finding } from './finding.js'

/** Bumped only on incompatible changes; docs/diagnose.schema.json describes it. */
export const REPORT_SCHEMA = 'p2p-cache/diagnose/v1'

export interface Report {
  schema: typeof REPORT_SCHEMA
  version: string
  startedAt: string
  durationMs: number
  /** The throwaway node that ran the P2P checks. */
  probePeerId: string | null
  /** The running sidecar that was checked, if one answered. */
  sidecar: string | null
  network: { mode: 'host' | 'bridge' | 'unknown', container: boolean }
  verdict: 'healthy' | 'problems' | 'unusable-input'
  /** 0 healthy (warnings allowed), 1 a check failed, 2 the input could not be used. */
  exitCode: 0 | 1 | 2
  counts: { ok: number, warn: number, fail: number, skip: number }
  findings: Finding[]
}

/**
 * The report's verdict, exit code and counts from its findings: any failure makes `problems`
 * (exit 1), warnings alone stay `healthy` (exit 0); `unusable` input (a malformed --bootstrap
 * address) wins (exit 2).
 */
export function verdictOf (findings: Finding[], unusable: boolean): Pick<Report, 'verdict' | 'exitCode' | 'counts'> {
  const count = (v: Finding['verdict']): number => findings.filter(f => f.verdict === v).length
  const failures = count('fail')
  return {
    verdict: unusable ? 'unusable-input' : failures > 0 ? 'problems' : 'healthy',
    exitCode: unusable ? 2 : failures > 0 ? 1 : 0,
    counts: { ok: count('ok'), warn: count('warn'), fail: failures, skip: count('skip') }
  }
}

const MARK = { ok: '✓', warn: '!', fail: '✗', skip: '-' } as const

/** The human form: one line per finding, its fix indented under it, a summary last. */
export function renderText (report: Report): string {
  const width = Math.max(...report.findings.map(f => f.check.length))
  const lines = [
    `p2p-cache diagnose ${report.version} (${report.network.mode} network${report.network.container ? ', in a container' : ''})`
  ]
  let subject: string | undefined
  for (const f of report.findings) {
    if (f.subject !== undefined && f.subject !== subject && f.check.startsWith('bootstrap.')) lines.push(`  bootstrap peer ${f.subject}`)
    subject = f.check.startsWith('bootstrap.') ? f.subject : undefined
    const indent = subject !== undefined ? '    ' : '  '
    lines.push(`${indent}${MARK[f.verdict]} ${f.check.padEnd(width)}  ${f.summary}`)
    if (f.fix !== undefined) lines.push(`${indent}  ${' '.repeat(width)}  fix: ${f.fix}`)
  }
  const { ok, warn, fail } = report.counts
  const verdict = report.verdict === 'healthy' ? 'healthy' : report.verdict === 'problems' ? 'problems found' : 'unusable input'
  lines.push(
    '',
    `${verdict}: ${ok} ok, ${warn} warning${warn === 1 ? '' : 's'}, ${fail} failure${fail === 1 ? '' : 's'} (${report.durationMs} ms)`
  )
  return lines.join('\n') + '\n'
}
