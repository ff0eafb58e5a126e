import assert from 'node:assert/strict'
import { apiKey, isApiKey, normalizeAccept, parseApiKey, type ApiKey } from '../../../src/keys/api-key.js'

describe('api keys: the swarm-wide name of a cached API response', () => {
  it('is upstream, path and query, then the Accept it was negotiated for', () => {
    const key = apiKey('github /repos/o/r/releases?per_page=5', 'application/vnd.github.raw')
    assert.equal(key, 'api:github /repos/o/r/releases?per_page=5#application/vnd.github.raw')
    assert.equal(isApiKey(key), true)
    assert.deepEqual(parseApiKey(key), { resource: 'github /repos/o/r/releases?per_page=5', accept: 'application/vnd.github.raw' })
  })

  it("curl and Octokit share one record: no Accept, */* and GitHub's default media types all mean the default", () => {
    const keys = ['', '*/*', 'application/vnd.github+json', 'application/vnd.github.v3+json', 'Application/VND.GitHub+JSON', ' */ * ']
      .map(accept => apiKey('github /user', accept))
    assert.deepEqual(new Set(keys), new Set(['api:github /user#']))
    assert.equal(normalizeAccept(undefined), '')
  })

  it('a different representation is a different key; whitespace inside the Accept does not matter', () => {
    assert.notEqual(apiKey('github /x', 'application/vnd.github.raw'), apiKey('github /x', ''))
    assert.equal(normalizeAccept('application/json, text/plain'), 'application/json,text/plain')
    assert.equal(normalizeAccept('Text/Plain'), 'Text/Plain', 'a non-default Accept keeps its case')
  })

  it('refuses keys a peer could use to smuggle anything else: wrong prefix, bad upstream name, spaces, no path, oversize', () => {
    for (const key of [
      'apix:github /x#',
      'api:github x#',
      'api:github /x',
      'api:git hub /x#',
      'api: /x#',
      'api:github /x y#',
      'api:github /x#a b',
      `api:${'a'.repeat(65)} /x#`,
      `api:github /${'x'.repeat(401)}#`,
      `api:github /x#${'a'.repeat(201)}`,
      'api:github /x#\n',
      'sha256:' + 'a'.repeat(64)
    ]) {
      assert.equal(isApiKey(key), false, key)
      assert.equal(parseApiKey(key as ApiKey), undefined, key)
    }
  })

  it('a # in the Accept does not name the record again when parsed (the resolver keeps such records to itself)', () => {
    const key = apiKey('github /a', 'application/x#y')
    assert.notDeepEqual(parseApiKey(key), { resource: 'github /a', accept: 'application/x#y' })
  })

  it('accepts keys at the size limits', () => {
    assert.equal(isApiKey(`api:${'a'.repeat(64)} /${'x'.repeat(400)}#${'a'.repeat(200)}`), true)
    assert.equal(isApiKey('api:my.up_stream-1 /#'), true)
  })
})
