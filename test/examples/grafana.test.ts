import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { OPTIONS } from '../../src/config/options.js'
import { run } from '../fixtures/netns.js'
import { startSidecar } from '../fixtures/sidecar-process.js'
import { readExample } from './example-files.js'
import { COUNTER_CALLS, counterWindows, metricFamilies, metricUses, selectableSeries } from './promql.js'
import { skipUnlessCi } from '../fixtures/skip.js'

interface DatasourceRef {
  type?: string
  uid?: string
}

interface Target {
  refId: string
  expr?: string
  datasource?: DatasourceRef
}

interface Panel {
  id: number
  type: string
  title: string
  datasource?: DatasourceRef
  gridPos: { x: number, y: number, w: number, h: number }
  targets?: Target[]
  panels?: Panel[]
}

interface Variable {
  name: string
  type: string
  query?: string | { query?: string }
  definition?: string
  datasource?: DatasourceRef
  multi?: boolean
  includeAll?: boolean
}

interface Annotation {
  name: string
  builtIn?: number
  datasource?: DatasourceRef
  expr?: string
}

interface Dashboard {
  uid: string
  title: string
  schemaVersion: number
  panels: Panel[]
  templating: { list: Variable[] }
  annotations: { list: Annotation[] }
}

interface ScrapeConfig {
  job_name: string
  metrics_path?: string
  static_configs?: Array<{ targets: string[] }>
  file_sd_configs?: Array<{ files: string[] }>
}

/** A PromQL expression of the dashboard, named by where it is. */
interface Query {
  where: string
  expr: string
}

const DS_VARIABLE = 'DS_PROMETHEUS'
const DS_UID = '${DS_PROMETHEUS}'
const INSTANCE_MATCHER = 'instance=~"$instance"'
const DEFAULT_HTTP_PORT = (OPTIONS.httpAddr.default ?? '').split(':').pop() ?? ''

/** Every panel, rows and the panels of collapsed rows included. */
function allPanels (panels: Panel[]): Panel[] {
  return panels.flatMap(p => [p, ...allPanels(p.panels ?? [])])
}

/** The query of a Prometheus query variable: the editor's object form or the older string. */
function variableQuery (v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query?.query ?? ''
}

/** Every PromQL expression: panel targets, annotations, and the selector of each label_values() variable. */
function queries (d: Dashboard): Query[] {
  const out: Query[] = []
  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr ?? '' })
  }
  for (const a of d.annotations.list.filter(a => a.expr !== undefined)) out.push({ where: `annotation "${a.name}"`, expr: a.expr ?? '' })
  for (const v of d.templating.list.filter(v => v.type === 'query')) {
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(variableQuery(v))
    assert.ok(m !== null, `variable ${v.name}: label_values(<selector>, <label>), not ${variableQuery(v)}`)
    out.push({ where: `variable ${v.name}`, expr: m[1] as string })
  }
  return out
}

/** The YAML of a commented-out block: from the comment line that is `first` to the next empty comment. */
function commentedYaml (text: string, first: string): string {
  const lines = text.split('\n')
  const start = lines.findIndex(l => /^\s*#/.test(l) && l.replace(/^\s*# ?/, '') === first)
  assert.ok(start >= 0, `a commented "${first}"`)
  const block: string[] = []
  for (const line of lines.slice(start)) {
    if (!/^\s*#/.test(line) || /^\s*#\s*$/.test(line)) break
    block.push(line.replace(/^\s*# ?/, ''))
  }
  return block.join('\n')
}

/** Why promtool (Debian's prometheus package) can't check here, or undefined when it can. */
async function promtoolMissing (): Promise<string | undefined> {
  return (await run('promtool', ['--version'])).code === 0 ? undefined : 'promtool is not installed'
}

describe('examples/grafana and examples/prometheus', function () {
  this.timeout(60_000)
  let dashboard: Dashboard
  let prometheus: { scrape_configs: ScrapeConfig[] }
  let prometheusText: string
  /** What the real sidecar's /metrics offers: series names and whether they count up. */
  let exported: Map<string, 'counter' | 'gauge'>

  before(async () => {
    dashboard = JSON.parse(await readExample('grafana', 'p2p-cache-dashboard.json')) as Dashboard
    prometheusText = await readExample('prometheus', 'prometheus.yml')
    prometheus = parseYaml(prometheusText) as { scrape_configs: ScrapeConfig[] }
    // The sidecar as users run it, scraped on the path the Prometheus example names.
    const sidecar = await startSidecar()
    try {
      const path = prometheus.scrape_configs[0]?.metrics_path ?? '/metrics'
      const res = await fetch(`${sidecar.url}${path}`, { signal: AbortSignal.timeout(10_000) })
      assert.equal(res.status, 200, `GET ${path}`)
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
      exported = selectableSeries(metricFamilies(await res.text()))
    } finally {
      await sidecar.destroy()
    }
    assert.ok(
      exported.has('p2p_cache_hits_total') && exported.has('p2p_cache_process_nodejs_gc_duration_seconds_sum'),
      'scraped the families'
    )
  })

  it('is a current Grafana dashboard with a Prometheus datasource variable and a multi-value instance variable', () => {
    assert.ok(dashboard.schemaVersion >= 39, `schemaVersion ${dashboard.schemaVersion} (Grafana 11 and later: 39+)`)
    assert.match(dashboard.uid, /^[\w-]{1,40}$/)
    const ds = dashboard.templating.list.find(v => v.name === DS_VARIABLE)
    assert.equal(ds?.type, 'datasource')
    assert.equal(ds.query, 'prometheus')
    const instance = dashboard.templating.list.find(v => v.name === 'instance')
    assert.equal(instance?.type, 'query')
    assert.match(variableQuery(instance), /^label_values\(p2p_cache_\w+, instance\)$/)
    assert.ok(instance.multi === true && instance.includeAll === true, 'one, several or all instances')
    // What a panel needs comes from /metrics: nothing for the user to type in and keep in step with the fleet.
    assert.deepEqual(dashboard.templating.list.filter(v => v.type === 'textbox').map(v => v.name), [])
  })

  it('panel ids are unique and every panel fits the 24-column grid', () => {
    const panels = allPanels(dashboard.panels)
    assert.ok(panels.length >= 30, `${panels.length} panels`)
    const ids = panels.map(p => p.id)
    assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'duplicate panel ids')
    for (const p of panels) {
      assert.ok(Number.isInteger(p.id) && p.id > 0, `panel "${p.title}" id ${p.id}`)
      const { x, w, h } = p.gridPos
      assert.ok(x >= 0 && w > 0 && h > 0 && x + w <= 24, `panel ${p.id} "${p.title}" gridPos ${JSON.stringify(p.gridPos)}`)
    }
  })

  it('every panel, target, annotation and query variable reads the ${DS_PROMETHEUS} datasource', () => {
    const refs: Array<{ where: string, ds: DatasourceRef | undefined }> = []
    for (const p of allPanels(dashboard.panels).filter(p => p.type !== 'row')) {
      refs.push({ where: `panel ${p.id} "${p.title}"`, ds: p.datasource })
      assert.ok((p.targets ?? []).length > 0, `panel ${p.id} "${p.title}" has a query`)
      for (const t of p.targets ?? []) refs.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, ds: t.datasource })
    }
    for (const a of dashboard.annotations.list.filter(a => a.builtIn !== 1)) {
      refs.push({ where: `annotation "${a.name}"`, ds: a.datasource })
    }
    for (const v of dashboard.templating.list.filter(v => v.type === 'query')) refs.push({ where: `variable ${v.name}`, ds: v.datasource })
    for (const { where, ds } of refs) assert.deepEqual(ds, { type: 'prometheus', uid: DS_UID }, where)
  })

  it('every metric a query names is one the real sidecar exports at /metrics', () => {
    const all = queries(dashboard)
    assert.ok(all.length >= 60, `${all.length} expressions`)
    const unknown: string[] = []
    const used = new Set<string>()
    for (const { where, expr } of all) {
      const uses = metricUses(expr)
      if (!where.startsWith('variable')) assert.ok(uses.length > 0, `${where} names no metric: ${expr}`)
      for (const { name } of uses) {
        used.add(name)
        if (!exported.has(name)) unknown.push(`${where}: ${name}`)
      }
    }
    assert.deepEqual(unknown, [])
    // The sources of the hit ratio and the process metrics are all there.
    for (const name of ['hits', 'misses', 'peer_hits', 'upstream_hits', 'stale_tags_served', 's3_hits']) {
      assert.ok(used.has(`p2p_cache_${name}_total`), `the dashboard shows p2p_cache_${name}_total`)
    }
    assert.ok([...used].some(n => n.startsWith('p2p_cache_process_')), 'process metrics')
    // The store against its bound, and transfers in progress.
    for (const name of ['max_size_bytes', 'downloads_in_progress', 'uploads_to_peers_in_progress']) {
      assert.ok(used.has(`p2p_cache_${name}`), `the dashboard shows p2p_cache_${name}`)
    }
  })

  it("counters only under rate()/increase() with Grafana's windows, gauges never", () => {
    for (const { where, expr } of queries(dashboard)) {
      for (const { name, call } of metricUses(expr)) {
        // Unknown names are the test above's to report.
        if (where.startsWith('variable') || !exported.has(name)) continue
        if (exported.get(name) === 'counter') {
          assert.ok(call !== undefined && COUNTER_CALLS.has(call), `${where}: counter ${name} under ${call ?? 'nothing'}(): ${expr}`)
        } else {
          assert.ok(call === undefined || !COUNTER_CALLS.has(call), `${where}: gauge ${name} under ${call}(): ${expr}`)
        }
      }
      for (const { call, window } of counterWindows(expr)) {
        const allowed = call === 'increase' ? ['$__rate_interval', '$__range'] : ['$__rate_interval']
        assert.ok(allowed.includes(window), `${where}: ${call}(...[${window}]) (use ${allowed.join(' or ')}): ${expr}`)
      }
    }
  })

  it('every selector of a panel or annotation is filtered by the instance variable', () => {
    for (const { where, expr } of queries(dashboard).filter(q => !q.where.startsWith('variable'))) {
      for (const { name } of metricUses(expr)) {
        const selectors = [...expr.matchAll(new RegExp(`\\b${name}(\\{[^}]*\\})?`, 'g'))]
        for (const s of selectors) assert.ok(s[1]?.includes(INSTANCE_MATCHER), `${where}: ${s[0]} without ${INSTANCE_MATCHER}`)
      }
    }
  })

  it('every expression is valid PromQL (promtool check rules, Grafana variables filled in)', async function () {
    const why = await promtoolMissing()
    if (why !== undefined) {
      skipUnlessCi(this, why)
    }
    const fill = (expr: string): string =>
      expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '6h').replaceAll('$instance', '.*')
    const rules = queries(dashboard).map((q, i) => ({ record: `dashboard:expr_${i}`, expr: fill(q.expr) }))
    assert.deepEqual(rules.filter(r => r.expr.includes('$')), [], 'a variable left unfilled')
    const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-grafana-'))
    try {
      await writeFile(join(dir, 'rules.yml'), stringifyYaml({ groups: [{ name: 'dashboard', rules }] }))
      const r = await run('promtool', ['check', 'rules', join(dir, 'rules.yml')], { timeoutMs: 30_000 })
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
      assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('prometheus.yml scrapes /metrics of every runner host on the default HTTP port, and says why that needs CACHE_HTTP_ADDR', () => {
    assert.equal(prometheus.scrape_configs.length, 1)
    const job = prometheus.scrape_configs[0] as ScrapeConfig
    assert.equal(job.metrics_path ?? '/metrics', '/metrics')
    const targets = (job.static_configs ?? []).flatMap(c => c.targets)
    assert.ok(targets.length >= 2, 'a fleet of hosts')
    for (const t of targets) assert.match(t, new RegExp(`^[\\w.-]+:${DEFAULT_HTTP_PORT}$`))
    const fileTargets = (parseYaml(commentedYaml(prometheusText, '- targets:')) as Array<{ targets: string[] }>).flatMap(g => g.targets)
    assert.ok(fileTargets.length >= 1)
    for (const t of fileTargets) assert.match(t, new RegExp(`^[\\w.-]+:${DEFAULT_HTTP_PORT}$`))
    assert.ok(prometheusText.includes(OPTIONS.httpAddr.default ?? ''), `names the default ${OPTIONS.httpAddr.default}`)
    assert.match(prometheusText, /CACHE_HTTP_ADDR=0\.0\.0\.0:9080/)
  })

  it('prometheus.yml and its commented file_sd variant pass promtool check config', async function () {
    const why = await promtoolMissing()
    if (why !== undefined) {
      skipUnlessCi(this, why)
    }
    const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-prometheus-'))
    try {
      const asIs = join(dir, 'prometheus.yml')
      await writeFile(asIs, prometheusText)
      const r = await run('promtool', ['check', 'config', asIs], { timeoutMs: 30_000 })
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)

      // The variant: the commented file_sd_configs instead of static_configs, its file written where it says.
      const fileSd = parseYaml(commentedYaml(prometheusText, 'file_sd_configs:')) as { file_sd_configs: Array<{ files: string[] }> }
      const targetsFile = join(dir, 'p2p-cache-targets.yml')
      await writeFile(targetsFile, commentedYaml(prometheusText, '- targets:'))
      const config = parseYaml(prometheusText) as { scrape_configs: ScrapeConfig[] }
      const job = config.scrape_configs[0] as ScrapeConfig
      delete job.static_configs
      job.file_sd_configs = fileSd.file_sd_configs.map(c => ({ ...c, files: c.files.map(() => targetsFile) }))
      const variant = join(dir, 'file-sd.yml')
      await writeFile(variant, stringifyYaml(config))
      const v = await run('promtool', ['check', 'config', variant], { timeoutMs: 30_000 })
      // promtool (2.42) checks the job's file_sd_configs, not the targets file: the test above checks that.
      assert.equal(v.code, 0, `${v.stdout}${v.stderr}`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
