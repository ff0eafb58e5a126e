import assert from 'node:assert/strict'
import { parseChallenge } from '../../../src/upstream/challenge.js'

describe('upstream challenge: WWW-Authenticate parsing (RFC 7235)', () => {
  it('a Bearer challenge gives its scheme in lower case and its auth-params', () => {
    assert.deepEqual(
      parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'),
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' }
      }
    )
  })

  it('quoted values keep their commas and escaped quotes; names are case-insensitive', () => {
    const c = parseChallenge('Bearer Realm="https://r/t", scope="repository:a:pull,push repository:b:pull", error="say \\"hi\\""')
    assert.equal(c?.params.realm, 'https://r/t')
    assert.equal(c?.params.scope, 'repository:a:pull,push repository:b:pull')
    assert.equal(c?.params.error, 'say "hi"')
  })

  it('unquoted values and a bare Basic challenge are understood', () => {
    assert.deepEqual(parseChallenge('Basic realm=registry'), { scheme: 'basic', params: { realm: 'registry' } })
    assert.deepEqual(parseChallenge('Basic'), { scheme: 'basic', params: {} })
  })

  it('no header, or one that does not start with a scheme, is no challenge', () => {
    assert.equal(parseChallenge(undefined), undefined)
    assert.equal(parseChallenge('"realm"'), undefined)
    assert.equal(parseChallenge(''), undefined)
  })
})
