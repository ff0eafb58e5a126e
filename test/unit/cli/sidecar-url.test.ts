import assert from 'node:assert/strict'
import { localSidecarUrl } from '../../../src/cli/sidecar-url.js'
import { ConfigError } from '../../../src/errors/config-error.js'

describe('localSidecarUrl: the sidecar this host configured, from CACHE_HTTP_ADDR', () => {
  it('is the default address when CACHE_HTTP_ADDR is unset', () => {
    assert.equal(localSidecarUrl({}), 'http://127.0.0.1:9080')
  })

  it('reaches a wildcard address over loopback, and brackets IPv6', () => {
    assert.equal(localSidecarUrl({ CACHE_HTTP_ADDR: '0.0.0.0:1234' }), 'http://127.0.0.1:1234')
    assert.equal(localSidecarUrl({ CACHE_HTTP_ADDR: ':1234' }), 'http://127.0.0.1:1234')
    assert.equal(localSidecarUrl({ CACHE_HTTP_ADDR: '[::]:1234' }), 'http://[::1]:1234')
    assert.equal(localSidecarUrl({ CACHE_HTTP_ADDR: '[::1]:1234' }), 'http://[::1]:1234')
    assert.equal(localSidecarUrl({ CACHE_HTTP_ADDR: '10.0.0.5:80' }), 'http://10.0.0.5:80')
  })

  it('a bad CACHE_HTTP_ADDR is the one-line configuration error', () => {
    assert.throws(
      () => localSidecarUrl({ CACHE_HTTP_ADDR: 'localhost' }),
      (err: unknown) => err instanceof ConfigError && err.message.startsWith('invalid CACHE_HTTP_ADDR="localhost"')
    )
  })
})
