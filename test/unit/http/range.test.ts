import assert from 'node:assert/strict'
import { selectRange } from '../../../src/http/range.js'

const ETAG = `"sha256:${'b'.repeat(64)}"`

describe('selectRange: one byte range of a blob (RFC 9110 14)', () => {
  it('no Range header, or an unknown size, means the whole blob', () => {
    assert.deepEqual(selectRange(undefined, 100), { kind: 'full' })
    assert.deepEqual(selectRange('bytes=0-9', undefined), { kind: 'full' })
  })

  it('bytes=a-b, bytes=a- and suffix ranges give a half-open [start, end)', () => {
    assert.deepEqual(selectRange('bytes=0-9', 100), { kind: 'partial', start: 0, end: 10 })
    assert.deepEqual(selectRange('bytes=90-', 100), { kind: 'partial', start: 90, end: 100 })
    assert.deepEqual(selectRange('bytes=-10', 100), { kind: 'partial', start: 90, end: 100 })
  })

  it('a last byte past the end is clamped to the blob size', () => {
    assert.deepEqual(selectRange('bytes=50-1000', 100), { kind: 'partial', start: 50, end: 100 })
  })

  it('a range starting at or past the end is unsatisfiable (416)', () => {
    assert.deepEqual(selectRange('bytes=100-', 100), { kind: 'unsatisfiable' })
    assert.deepEqual(selectRange('bytes=200-300', 100), { kind: 'unsatisfiable' })
  })

  it('a malformed header or another unit is ignored: the whole blob', () => {
    assert.deepEqual(selectRange('bytes=abc', 100), { kind: 'full' })
    assert.deepEqual(selectRange('items=0-5', 100), { kind: 'full' })
  })

  it('several ranges get the whole blob, as registries do; overlapping ones are combined into one', () => {
    assert.deepEqual(selectRange('bytes=0-9,50-59', 100), { kind: 'full' })
    assert.deepEqual(selectRange('bytes=0-9,5-19', 100), { kind: 'partial', start: 0, end: 20 })
  })

  it('If-Range applies the Range only when it is exactly the ETag; a date never matches', () => {
    assert.deepEqual(selectRange('bytes=10-', 100, ETAG, ETAG), { kind: 'partial', start: 10, end: 100 })
    assert.deepEqual(selectRange('bytes=10-', 100, `"sha256:${'c'.repeat(64)}"`, ETAG), { kind: 'full' })
    assert.deepEqual(selectRange('bytes=10-', 100, 'Wed, 21 Oct 2015 07:28:00 GMT', ETAG), { kind: 'full' })
    assert.deepEqual(selectRange('bytes=10-', 100, `W/${ETAG}`, ETAG), { kind: 'full' }, 'a weak validator is no strong match')
  })
})
