import assert from 'node:assert/strict'
import { SidecarAnswerError, UnusableImageError } from '../../../../src/cli/warm/errors.js'

describe('warm errors: what went wrong and what to do', () => {
  it('a sidecar error names its status, OCI code and message, and keeps the hint apart', () => {
    const err = new SidecarAnswerError(404, 'MANIFEST_UNKNOWN', 'manifest unknown', 'check the tag')
    assert.equal(err.message, 'the sidecar answered 404 MANIFEST_UNKNOWN: manifest unknown')
    assert.equal(err.name, 'SidecarAnswerError')
    assert.equal(err.status, 404)
    assert.equal(err.hint, 'check the tag')
    assert.ok(err instanceof Error)
  })

  it('an unusable image says what was found, with an optional hint', () => {
    const err = new UnusableImageError('x has no linux/s390x image')
    assert.equal(err.name, 'UnusableImageError')
    assert.equal(err.hint, undefined)
    assert.equal(new UnusableImageError('m', 'h').hint, 'h')
  })
})
