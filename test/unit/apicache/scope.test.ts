import assert from 'node:assert/strict'
import { Scopes } from '../../../src/apicache/scope.js'

describe('apicache scope: the cache partition of a credential', () => {
  it('no credential (or a blank one) is `anon`', () => {
    const scopes = new Scopes(Buffer.from('secret'))
    assert.equal(scopes.of(undefined), 'anon')
    assert.equal(scopes.of('  '), 'anon')
  })

  it('a credential is 32 hex characters that do not contain it, the same for surrounding whitespace', () => {
    const scopes = new Scopes(Buffer.from('secret'))
    const scope = scopes.of('Bearer ghp_abc')
    assert.match(scope, /^[0-9a-f]{32}$/)
    assert.equal(scopes.of(' Bearer ghp_abc '), scope)
    assert.notEqual(scopes.of('Bearer ghp_abd'), scope)
  })

  it('the hash is keyed by the node secret: another node (or a leaked table) computes another scope', () => {
    assert.notEqual(new Scopes(Buffer.from('a')).of('Bearer t'), new Scopes(Buffer.from('b')).of('Bearer t'))
  })
})
