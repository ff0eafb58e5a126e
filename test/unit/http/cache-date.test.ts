import assert from 'node:assert/strict'
import { cacheDateHeader } from '../../../src/http/cache-date.js'

describe('cacheDateHeader: X-Cache-Date on a HIT', () => {
  it('a HIT with a stored-at time: that time as an IMF-fixdate (RFC 9110 5.6.7), to the second', () => {
    assert.deepEqual(cacheDateHeader('HIT', Date.UTC(2026, 1, 3, 4, 5, 6, 789)), { 'x-cache-date': 'Tue, 03 Feb 2026 04:05:06 GMT' })
  })

  it('nothing for other answers, or without a time', () => {
    for (const cache of ['MISS', 'PEER', 'REVALIDATED', 'PASS']) assert.deepEqual(cacheDateHeader(cache, Date.now()), {}, cache)
    assert.deepEqual(cacheDateHeader('HIT', undefined), {})
    assert.deepEqual(cacheDateHeader('HIT', Number.NaN), {})
  })
})
