import assert from 'node:assert/strict'
import { parseRuntimeToken, readScopes, RuntimeTokenError, writeScope } from '../../../src/actionscache/runtime-token.js'
import { runtimeToken } from '../../fixtures/runtime-token.js'

describe('the runtime token: the cache scopes of a job (ac), unverified', () => {
  it('reads ac in order: the write scope is the first with the write bit, reads are every scope with the read bit', () => {
    const token = parseRuntimeToken(
      `Bearer ${
        runtimeToken([{ scope: 'refs/pull/7/merge', permission: 3 }, { scope: 'refs/heads/main', permission: 1 }], { repositoryId: '42' })
      }`
    )
    assert.equal(writeScope(token), 'refs/pull/7/merge')
    assert.deepEqual(readScopes(token), ['refs/pull/7/merge', 'refs/heads/main'])
    assert.equal(token.repository, '42')
    assert.equal(parseRuntimeToken(`Bearer ${runtimeToken([{ scope: 'refs/heads/main', permission: 1 }])}`).repository, undefined)
    assert.equal(writeScope(parseRuntimeToken(`Bearer ${runtimeToken([{ scope: 'refs/heads/main', permission: 1 }])}`)), undefined)
  })

  it('refuses what is not a usable token, saying what is wrong', () => {
    const bad = (auth: string | undefined, re: RegExp): void => {
      assert.throws(() => parseRuntimeToken(auth), (err: Error) => err instanceof RuntimeTokenError && re.test(err.message))
    }
    bad(undefined, /Authorization: Bearer/)
    bad('Basic abc', /Authorization: Bearer/)
    bad('Bearer a.!!!.c', /Authorization: Bearer/)
    bad(`Bearer x.${Buffer.from('not json').toString('base64url')}.y`, /not JSON/)
    bad(`Bearer x.${Buffer.from(JSON.stringify({ ac: '[{"Scope":"a","Permission":9}]' })).toString('base64url')}.y`, /`ac` claim/)
    bad(`Bearer x.${Buffer.from(JSON.stringify({ ac: 'not json' })).toString('base64url')}.y`, /`ac` claim/)
    bad(`Bearer ${runtimeToken([{ scope: 'refs/heads/main', permission: 3 }], { expiresInS: -10 })}`, /expired/)
  })
})
