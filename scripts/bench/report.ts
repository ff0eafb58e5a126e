/** One line of the result table; the numbers are kept for the JSON file. */
export interface Row {
  metric: string
  unit: string
  value: number
  baseline: number | undefined
  /** value / baseline, unless the row says otherwise. */
  ratio: number | undefined
  /** Human form of the target, e.g. ">= 0.80"; "-" when docs/design.md §6 sets none. */
  target: string
  /** undefined when there is no target to meet. */
  pass: boolean | undefined
  /** Digits after the decimal point for value and baseline. */
  digits: number
  note?: string
}

export function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

export const MB = 1e6
export const MiB = 1024 * 1024

export function ratioOf (value: number, baseline: number): number {
  return baseline === 0 ? NaN : value / baseline
}

export function formatTable (rows: Row[]): string {
  const header = ['metric', 'value', 'baseline', 'ratio', 'target']
  const cells = rows.map(r => [
    `${r.metric} (${r.unit})`,
    r.value.toFixed(r.digits),
    r.baseline === undefined ? '-' : r.baseline.toFixed(r.digits),
    r.ratio === undefined ? '-' : r.ratio.toFixed(3),
    r.pass === undefined ? r.target : `${r.target} ${r.pass ? 'ok' : 'FAIL'}`
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map(c => (c[i] ?? '').length)))
  const left = new Set([0, 4])
  const line = (c: string[]): string =>
    c.map((s, i) => left.has(i) ? s.padEnd(widths[i] ?? 0) : s.padStart(widths[i] ?? 0)).join(' | ').trimEnd()
  const rule = widths.map(w => '-'.repeat(w)).join('-|-')
  return [line(header), rule, ...cells.map(line)].join('\n')
}

/** Nearest-rank percentile (p in 0..100) of `xs`; NaN when empty. */
export function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const rank = Math.min(s.length, Math.max(1, Math.ceil(p / 100 * s.length)))
  return s[rank - 1] as number
}
