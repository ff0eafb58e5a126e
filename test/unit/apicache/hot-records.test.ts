import assert from 'node:assert/strict'
import CachePolicy from 'http-cache-semantics'
import { HotRecords, type HotEntry } from '../../../src/apicache/hot-records.js'
import { HOT_MAX_BYTES, HOT_MAX_ENTRIES } from '../../../src/apicache/constants.js'
import { sha256Digest } from '../../../src/oci/digest.js'

const policy = new CachePolicy({ url: '/x', method: 'GET', headers: {} }, { status: 200, headers: { 'cache-control': 'max-age=60' } })

function entry (size: number): HotEntry {
  const body = Buffer.alloc(size)
  return {
    record: { policy: policy.toObject(), status: 200, headers: {}, body: sha256Digest(body), size, scope: 'anon', accept: '', storedAt: 0 },
    body,
    policy,
    freshUntil: 0,
    varyInKey: true
  }
}

describe('apicache hot-records: recent responses in memory', () => {
  it('entries are keyed by resource, scope and Accept; forget removes one', () => {
    const hot = new HotRecords()
    hot.set('github /x', 'anon', '', entry(1))
    assert.ok(hot.get('github /x', 'anon', '') !== undefined)
    assert.equal(hot.get('github /x', 'fleet', ''), undefined)
    assert.equal(hot.get('github /x', 'anon', 'raw'), undefined)
    hot.forget('github /x', 'anon', '')
    assert.equal(hot.get('github /x', 'anon', ''), undefined)
  })

  it('a body over a sixteenth of HOT_MAX_BYTES is not kept in memory', () => {
    const hot = new HotRecords()
    hot.set('github /big', 'anon', '', entry(HOT_MAX_BYTES / 16 + 1))
    assert.equal(hot.get('github /big', 'anon', ''), undefined)
  })

  it('past HOT_MAX_BYTES the oldest entries leave first; a re-stored entry counts as new', () => {
    const hot = new HotRecords()
    const size = HOT_MAX_BYTES / 16
    for (let i = 0; i < 16; i++) hot.set(`github /${i}`, 'anon', '', entry(size))
    hot.set('github /0', 'anon', '', entry(size))
    hot.set('github /16', 'anon', '', entry(size))
    assert.ok(hot.get('github /0', 'anon', '') !== undefined, 're-stored: now the newest')
    assert.equal(hot.get('github /1', 'anon', ''), undefined, 'the oldest left')
    assert.ok(hot.get('github /2', 'anon', '') !== undefined)
  })

  it('past HOT_MAX_ENTRIES the oldest entry leaves', () => {
    const hot = new HotRecords()
    const small = entry(0)
    for (let i = 0; i <= HOT_MAX_ENTRIES; i++) hot.set(`github /${i}`, 'anon', '', small)
    assert.equal(hot.get('github /0', 'anon', ''), undefined)
    assert.ok(hot.get(`github /${HOT_MAX_ENTRIES}`, 'anon', '') !== undefined)
  })
})
