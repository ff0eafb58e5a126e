/**
 * What a PromQL expression of the Grafana example reads, and what a /metrics page offers: enough
 * of both languages to tell that a dashboard names metrics the sidecar exports, and uses each as
 * its type allows.
 */

/** A metric an expression selects, and the innermost function it is an argument of (`rate`, `sum`, …). */
export interface MetricUse {
  name: string
  call: string | undefined
}

/** The PromQL functions and aggregations the dashboard may call: a misspelt one fails the test. */
export const PROMQL_CALLS: ReadonlySet<string> = new Set([
  'abs',
  'avg',
  'changes',
  'clamp_max',
  'clamp_min',
  'count',
  'deriv',
  'histogram_quantile',
  'increase',
  'irate',
  'max',
  'min',
  'quantile',
  'rate',
  'scalar',
  'sum',
  'topk',
  'vector'
])

/** The functions that take a counter (a range of a monotonic series). */
export const COUNTER_CALLS: ReadonlySet<string> = new Set(['rate', 'irate', 'increase'])

// Binary operators and clauses spelt as words: never metric names.
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right'])

/** Grafana's `$var` / `${var}` and the built-ins like `$__rate_interval`, dropped before parsing. */
const GRAFANA_VARIABLE = /\$\{[^}]*\}|\$\w+/g

/**
 * The metric selectors of an expression, with the function each is passed to. Label matchers,
 * range windows, `by (...)` lists and strings are removed first, so what remains is names,
 * numbers, operators and parentheses. Throws on a call to a function not in PROMQL_CALLS.
 */
export function metricUses (expr: string): MetricUse[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(GRAFANA_VARIABLE, '')
  const uses: MetricUse[] = []
  // The function of each open parenthesis; '' for one that only groups.
  const open: string[] = []
  for (const m of bare.matchAll(/\d+(?:\.\d+)?(?:e[+-]?\d+)?|([a-zA-Z_:][\w:]*)(\s*\()?|\(|\)/g)) {
    const [token, ident, calls] = m
    if (ident !== undefined) {
      if (calls !== undefined) {
        if (!PROMQL_CALLS.has(ident)) throw new Error(`unknown PromQL function ${ident}( in ${expr}`)
        open.push(ident)
      } else if (!KEYWORDS.has(ident)) {
        uses.push({ name: ident, call: [...open].reverse().find(c => c !== '') })
      }
    } else if (token === '(') {
      open.push('')
    } else if (token === ')') {
      if (open.pop() === undefined) throw new Error(`unbalanced ) in ${expr}`)
    }
  }
  if (open.length > 0) throw new Error(`unbalanced ( in ${expr}`)
  return uses
}

/** The `[window]` of every rate(), irate() and increase() call, or an error when one has none. */
export function counterWindows (expr: string): Array<{ call: string, window: string }> {
  const calls = [...expr.matchAll(/\b(i?rate|increase)\(/g)].length
  const windows = [...expr.matchAll(/\b(i?rate|increase)\([^()[\]]*\[([^\]]*)\]\)/g)].map(m => ({
    call: m[1] as string,
    window: m[2] as string
  }))
  if (windows.length !== calls) throw new Error(`a rate()/increase() without a plain selector[window] in ${expr}`)
  return windows
}

/** Each metric family of a Prometheus text page (`# TYPE name type`), with its type. */
export function metricFamilies (page: string): Map<string, string> {
  return new Map([...page.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(m => [m[1] as string, m[2] as string]))
}

/**
 * The series names a query can select, each with the type its values have: a histogram's
 * `_bucket`, `_sum` and `_count` (a summary's `_sum`, `_count` and the family) count up like counters.
 */
export function selectableSeries (families: Map<string, string>): Map<string, 'counter' | 'gauge'> {
  const out = new Map<string, 'counter' | 'gauge'>()
  for (const [name, type] of families) {
    if (type === 'histogram') { for (const suffix of ['_bucket', '_sum', '_count']) out.set(name + suffix, 'counter') }
    else if (type === 'summary') {
      out.set(name, 'gauge')
      for (const suffix of ['_sum', '_count']) out.set(name + suffix, 'counter')
    } else out.set(name, type === 'counter' ? 'counter' : 'gauge')
  }
  return out
}
