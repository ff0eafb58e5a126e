import assert from 'node:assert/strict'
import CachePolicy from 'http-cache-semantics'
import { CacheSemantics, conditionalHeaders, policyOn, shareableWithoutAsking, varyInKey } from '../../../src/apicache/cache-semantics.js'
import type { ApiRequest } from '../../../src/apicache/answer.js'
import type { HotEntry } from '../../../src/apicache/hot-records.js'
import type { ApiRecord } from '../../../src/apicache/records.js'
import { FLEET_SCOPE } from '../../../src/apicache/constants.js'
import { systemClock } from '../../../src/clock/clock.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { FakeApiUpstream } from '../fakes/api-upstream.js'
import { FakeClock } from '../fakes/clock.js'

describe('apicache cache-semantics: RFC 9111 for stored API responses', () => {
  const upstream = new FakeApiUpstream().api
  let clock: FakeClock
  let semantics: CacheSemantics

  beforeEach(() => {
    clock = new FakeClock()
    semantics = new CacheSemantics({ clock })
  })

  const request = (headers: Record<string, string> = {}): ApiRequest => ({ upstream, path: '/repos/octo/hello', headers })

  /** A response stored now under `scope`, as ResponseCache keeps it. */
  function stored (scope: string, headers: Record<string, string>, req = request()): HotEntry {
    const policy = new semantics.Policy(
      semantics.policyRequest(req, scope),
      { status: 200, headers: { date: new Date(clock.now()).toUTCString(), ...headers } },
      { shared: scope === 'anon' }
    )
    const body = Buffer.from('{}')
    const record: ApiRecord = {
      policy: policy.toObject(),
      status: 200,
      headers,
      body: sha256Digest(body),
      size: 2,
      scope,
      accept: '',
      storedAt: clock.now()
    }
    return { record, body, policy, freshUntil: clock.now() + policy.timeToLive(), varyInKey: varyInKey(headers.vary) }
  }

  it("the policy sees the scope in place of the credential, the upstream's host and the normalized Accept", () => {
    const seen = semantics.policyRequest(
      request({ authorization: 'Bearer secret', accept: 'application/vnd.github.v3+json', 'x-other': '1' }),
      'abc123'
    )
    assert.equal(seen.url, '/repos/octo/hello')
    assert.equal(seen.method, 'GET')
    assert.deepEqual(
      seen.headers,
      { authorization: 'abc123', host: upstream.url.host, 'x-other': '1' },
      "the default representation's names are no Accept at all"
    )
    assert.equal(
      semantics.policyRequest(request(), FLEET_SCOPE).headers.authorization,
      FLEET_SCOPE,
      "the fleet's request carries its scope though the client sent none"
    )
    assert.equal(semantics.policyRequest(request(), 'anon').headers.authorization, undefined)
    assert.equal(
      semantics.policyRequest(request({ accept: 'application/vnd.github.raw' }), 'anon').headers.accept,
      'application/vnd.github.raw'
    )
  })

  it("a fresh copy answers without asking only when shareable: anonymous, the fleet's, or marked public", () => {
    const alice = request({ authorization: 'Bearer alice' })
    assert.equal(semantics.servable(stored('anon', { 'cache-control': 'public, max-age=60' }), 'anon', request()), true)
    assert.equal(semantics.servable(stored(FLEET_SCOPE, { 'cache-control': 'private, max-age=60' }), FLEET_SCOPE, alice), true)
    assert.equal(
      semantics.servable(stored('abc', { 'cache-control': 'private, max-age=60' }, alice), 'abc', alice),
      false,
      "a credential's private copy is revalidated"
    )
    assert.equal(semantics.servable(stored('abc', { 'cache-control': 'public, max-age=60' }, alice), 'abc', alice), true)
    const copy = stored('anon', { 'cache-control': 'public, max-age=60' })
    clock.advance(61_000)
    assert.equal(semantics.servable(copy, 'anon', request()), false, 'stale')
  })

  it("from memory: the policy's verdict is memoized while fresh, unless the request has its own Cache-Control or Pragma", () => {
    const entry = stored('anon', { 'cache-control': 'public, max-age=60', vary: 'Accept, Accept-Encoding' })
    assert.equal(entry.varyInKey, true)
    assert.equal(semantics.servableFromMemory(entry, 'anon', request()), true)
    assert.equal(semantics.servableFromMemory(entry, 'anon', request({ 'cache-control': 'no-cache' })), false)
    assert.equal(semantics.servableFromMemory(entry, 'anon', request({ pragma: 'no-cache' })), false)
    clock.advance(60_000)
    assert.equal(semantics.servableFromMemory(entry, 'anon', request()), false)
  })

  it('a HIT sends Age as of now (computed once a second) and no X-RateLimit-*', () => {
    const entry = stored('anon', { 'cache-control': 'public, max-age=60', 'x-ratelimit-remaining': '59', etag: '"e"' })
    clock.advance(30_000)
    const hit = semantics.hit(entry)
    assert.equal(hit.cache, 'HIT')
    assert.equal(hit.status, 200)
    assert.equal(hit.body, entry.body)
    assert.equal(hit.headers.age, '30')
    assert.equal(hit.headers.etag, '"e"')
    assert.equal(hit.headers['x-ratelimit-remaining'], undefined)
    clock.advance(500)
    assert.equal(semantics.hit(entry).headers, hit.headers, 'the same second: the same headers object')
    clock.advance(500)
    assert.equal(semantics.hit(entry).headers.age, '31')
  })

  it('conditional headers: the ETag only for the credential that received it, else Last-Modified, else none', () => {
    const both = { etag: 'W/"1"', 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT' }
    assert.deepEqual(conditionalHeaders(both, true), { 'if-none-match': 'W/"1"' })
    assert.deepEqual(conditionalHeaders(both, false), { 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' })
    assert.equal(conditionalHeaders({ etag: 'W/"1"' }, false), undefined)
    assert.equal(conditionalHeaders({}, true), undefined)
  })

  it('a Vary on headers outside the key (Accept, Authorization, Accept-Encoding) does not fit every request', () => {
    assert.equal(varyInKey(undefined), true)
    assert.equal(varyInKey('Accept, Authorization, accept-encoding'), true)
    assert.equal(varyInKey('Accept, X-Client'), false)
  })

  it('shareable without asking: anon, fleet, or Cache-Control public', () => {
    const record = (cacheControl: string): ApiRecord => ({
      policy: new CachePolicy({ url: '/', headers: {} }, { status: 200, headers: {} }).toObject(),
      status: 200,
      headers: { 'cache-control': cacheControl },
      body: sha256Digest(Buffer.alloc(0)),
      size: 0,
      scope: 'x',
      accept: '',
      storedAt: 0
    })
    assert.equal(shareableWithoutAsking(record('private'), 'anon'), true)
    assert.equal(shareableWithoutAsking(record('private'), FLEET_SCOPE), true)
    assert.equal(shareableWithoutAsking(record('public, max-age=60'), 'abc'), true)
    assert.equal(shareableWithoutAsking(record('private, max-age=60'), 'abc'), false)
  })

  it('policyOn: the system clock uses CachePolicy itself; another clock a class that reads it', () => {
    assert.equal(policyOn(systemClock), CachePolicy)
    const Clocked = policyOn(clock)
    const policy = new Clocked(
      { url: '/', headers: {} },
      { status: 200, headers: { date: new Date(clock.now()).toUTCString(), 'cache-control': 'max-age=60' } }
    )
    clock.advance(10_000)
    assert.equal(policy.age(), 10, 'ages count on the injected clock')
  })
})
