import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { OPTIONS } from '../../src/config/options.js'
import { Stats } from '../../src/metrics/stats.js'

async function readme (): Promise<string> {
  return await readFile(new URL('../../README.md', import.meta.url), 'utf8')
}

/** The lines of the README section under `## <title>`, up to the next `## `. */
function section (text: string, title: string): string {
  const start = text.indexOf(`\n## ${title}\n`)
  assert.ok(start >= 0, `README has a "## ${title}" section`)
  const end = text.indexOf('\n## ', start + 1)
  return text.slice(start, end < 0 ? undefined : end)
}

describe('README', () => {
  it('documents every configuration variable and flag with its default', async () => {
    const text = await readme()
    for (const spec of Object.values(OPTIONS)) {
      const row = text.split('\n').find(line => line.startsWith(`| \`${spec.env}\``))
      assert.ok(row, `${spec.env} has a row in the configuration table`)
      assert.ok(row.includes(`\`${spec.flag}\``), `${spec.env} row names ${spec.flag}`)
      if (spec.default !== undefined && spec.default !== '') {
        assert.ok(row.includes(`\`${spec.default}\``), `${spec.env} row shows default ${spec.default}`)
      }
    }
  })

  it('the configuration table lists exactly the variables the config schema accepts', async () => {
    const rows = section(await readme(), 'Configuration').split('\n').filter(l => l.startsWith('| `CACHE_'))
    const documented = rows.map(r => /^\| `(CACHE_[A-Z0-9_]+)`/.exec(r)?.[1]).sort()
    assert.deepEqual(documented, Object.values(OPTIONS).map(o => o.env).sort())
  })

  it('the metrics table lists exactly what /metrics exports (besides process metrics)', async () => {
    const stats = new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false })
    stats.setApiRateLimit('github', 'fleet', 1)
    const exported = (await stats.registry.getMetricsAsJSON()).map(m => m.name).filter(n => !n.startsWith('p2p_cache_process_')).sort()
    const rows = section(await readme(), 'Metrics').split('\n').filter(l => l.startsWith('| `p2p_cache_'))
    const documented = rows.map(r => /^\| `(p2p_cache_[a-z0-9_]+)/.exec(r)?.[1]).sort()
    assert.deepEqual(documented, exported)
  })

  it('states the test time in the words .ci/run checks against each run (issue 29: it said 10 minutes, a fresh clone took 12)', async () => {
    const text = await readme()
    const stated = /([\d,]+) tests in about (\d+) minutes on a fresh two-core clone/.exec(text)
    assert.ok(stated !== null, 'the Development section says "<N> tests in about <M> minutes on a fresh two-core clone"')
    const run = await readFile(new URL('../../.ci/run', import.meta.url), 'utf8')
    assert.ok(run.includes("'tests in about [0-9]+ minutes on a fresh two-core clone'"), '.ci/run compares its time with that sentence')
  })
})
