import assert from 'node:assert/strict'
import { contentLength, mediaTypeOf } from '../../../src/http/fields.js'

describe('HTTP fields: Content-Length and Content-Type, parsed once', () => {
  it('Content-Length: digits only, a safe integer; repeated only when equal', () => {
    assert.equal(contentLength('1024'), 1024)
    assert.equal(contentLength(' 0 '), 0)
    assert.equal(contentLength(['5', '5']), 5)
    for (const bad of [undefined, '', '-1', '1e3', '12abc', '99999999999999999', ['5', '6']]) {
      assert.equal(contentLength(bad), undefined, String(bad))
    }
  })

  it('Content-Type: the media type, lower-cased, without parameters', () => {
    assert.equal(mediaTypeOf('Application/Vnd.OCI.Image.Manifest.v1+JSON; charset=utf-8'), 'application/vnd.oci.image.manifest.v1+json')
    assert.equal(mediaTypeOf(undefined), '')
  })
})
