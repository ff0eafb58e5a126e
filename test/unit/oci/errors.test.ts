import assert from 'node:assert/strict'
import { OciError } from '../../../src/oci/errors.js'

describe('OciError: the distribution spec error body', () => {
  it('body() is {"errors":[{code, message, detail}]} with detail {} when none is given', () => {
    const err = new OciError(404, 'BLOB_UNKNOWN', 'blob unknown to registry')
    assert.deepEqual(JSON.parse(err.body()), { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry', detail: {} }] })
    assert.equal(err.status, 404)
    assert.deepEqual(err.headers, {})
    assert.ok(err instanceof Error)
    assert.equal(err.name, 'OciError')
  })

  it('keeps the detail and the headers that go with the status (Retry-After on 429)', () => {
    const err = new OciError(429, 'TOOMANYREQUESTS', 'upstream rate limit', { upstream: 'docker.io' }, { 'retry-after': '30' })
    const body = JSON.parse(err.body()) as { errors: Array<{ detail: unknown }> }
    assert.deepEqual(body.errors[0]?.detail, { upstream: 'docker.io' })
    assert.deepEqual(err.headers, { 'retry-after': '30' })
  })

  it('a message with quotes and newlines still gives valid JSON', () => {
    const err = new OciError(400, 'NAME_INVALID', 'name "a\nb" is invalid')
    const body = JSON.parse(err.body()) as { errors: Array<{ message: string }> }
    assert.equal(body.errors[0]?.message, 'name "a\nb" is invalid')
  })
})
