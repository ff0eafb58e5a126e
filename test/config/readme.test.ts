import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { OPTIONS } from '../../src/config/options.js'

describe('README', () => {
  it('documents every configuration variable and flag with its default', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
    for (const spec of Object.values(OPTIONS)) {
      const row = readme.split('\n').find(line => line.startsWith(`| \`${spec.env}\``))
      assert.ok(row, `${spec.env} has a row in the configuration table`)
      assert.ok(row.includes(`\`${spec.flag}\``), `${spec.env} row names ${spec.flag}`)
      if (spec.default !== undefined && spec.default !== '') assert.ok(row.includes(`\`${spec.default}\``), `${spec.env} row shows default ${spec.default}`)
    }
  })
})
