import assert from 'node:assert/strict'
import { parseContentRange } from '../../../src/upstream/content-range.js'

describe('upstream content-range: the range a 206 holds', () => {
  it('parses bytes start-end/total', () => {
    assert.deepEqual(parseContentRange('bytes 0-99/1000'), { start: 0, end: 99, total: 1000 })
    assert.deepEqual(parseContentRange(' bytes 999-999/1000 '), { start: 999, end: 999, total: 1000 })
  })

  it('refuses what is absent, malformed, unknown-length, reversed or past the total', () => {
    for (const v of [undefined, '', 'bytes */1000', 'bytes 0-99/*', 'items 0-1/2', 'bytes 10-9/100', 'bytes 0-100/100', 'bytes -1-2/3']) {
      assert.equal(parseContentRange(v), undefined, String(v))
    }
  })
})
