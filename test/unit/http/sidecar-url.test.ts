import assert from 'node:assert/strict'
import { sidecarUrlFor } from '../../../src/http/sidecar-url.js'

describe('sidecarUrlFor: how to reach a listener from this host', () => {
  it('a wildcard address is reached over loopback', () => {
    assert.equal(sidecarUrlFor({ host: '0.0.0.0', port: 5000 }), 'http://127.0.0.1:5000')
    assert.equal(sidecarUrlFor({ host: '', port: 5000 }), 'http://127.0.0.1:5000')
    assert.equal(sidecarUrlFor({ host: '::', port: 5000 }), 'http://[::1]:5000')
  })

  it('a concrete address is kept, IPv6 in brackets', () => {
    assert.equal(sidecarUrlFor({ host: '127.0.0.1', port: 80 }), 'http://127.0.0.1:80')
    assert.equal(sidecarUrlFor({ host: '10.1.2.3', port: 5000 }), 'http://10.1.2.3:5000')
    assert.equal(sidecarUrlFor({ host: 'fd00::5', port: 5000 }), 'http://[fd00::5]:5000')
    assert.equal(new URL(sidecarUrlFor({ host: 'fd00::5', port: 5000 })).port, '5000', 'the result parses as a URL')
  })
})
