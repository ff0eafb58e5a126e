import assert from 'node:assert/strict'
import { sha256Digest } from '../../../src/oci/digest.js'
import { apiHarness, type ApiHarness } from './harness.js'

const ISSUES = '/repos/octo/hello/issues'
const ISSUES_BODY = JSON.stringify([{ number: 1, title: 'first issue' }])

describe('ApiResolver: RFC 9111 shared cache over the API upstream', () => {
  let h: ApiHarness
  afterEach(async () => {
    await h.close()
  })

  describe('without a fleet credential', () => {
    beforeEach(async () => {
      h = await apiHarness()
      h.fake.token('alice').token('bob').repo('octo/hello').resource(ISSUES, { body: ISSUES_BODY }).resource('/user', {
        body: '{"login":"alice"}'
      })
    })

    it('an anonymous response is a MISS, then a fresh HIT without any upstream request', async () => {
      const first = await h.ask(ISSUES)
      assert.equal(first.cache, 'MISS')
      assert.equal(first.body.toString(), ISSUES_BODY)
      h.clock.advance(30_000)
      const second = await h.ask(ISSUES)
      assert.equal(second.cache, 'HIT')
      assert.equal(second.body.toString(), ISSUES_BODY)
      assert.equal(h.fake.count(), 1)
      assert.equal(second.headers.age, '30', 'Age counts the time the copy spent in the cache')
    })

    it('a HIT carries no X-RateLimit-* headers (they describe whoever made the upstream request)', async () => {
      const miss = await h.ask(ISSUES)
      assert.ok(miss.headers['x-ratelimit-remaining'] !== undefined)
      const hit = await h.ask(ISSUES)
      assert.equal(hit.cache, 'HIT')
      assert.deepEqual(Object.keys(hit.headers).filter(k => k.startsWith('x-ratelimit-')), [])
    })

    it('a stale copy is revalidated with its ETag; the 304 is REVALIDATED, free of rate limit', async () => {
      await h.ask(ISSUES)
      h.clock.advance(61_000)
      const again = await h.ask(ISSUES)
      assert.equal(again.cache, 'REVALIDATED')
      assert.equal(again.body.toString(), ISSUES_BODY)
      const last = h.fake.log.at(-1)
      assert.equal(last?.status, 304)
      assert.equal(last?.headers['if-none-match'], h.fake.etagFor(ISSUES, undefined))
      assert.equal(h.stats.snapshot().revalidations_304, 1)
      // Fresh again for max-age after the 304 (RFC 9111 4.3.4).
      assert.equal((await h.ask(ISSUES)).cache, 'HIT')
    })

    it('a stale copy whose resource changed upstream is replaced by the new 200', async () => {
      await h.ask(ISSUES)
      h.clock.advance(61_000)
      h.fake.resource(ISSUES, { body: '[]' })
      const changed = await h.ask(ISSUES)
      assert.equal(changed.cache, 'MISS')
      assert.equal(changed.body.toString(), '[]')
      assert.equal((await h.ask(ISSUES)).body.toString(), '[]')
    })

    it('without an ETag a stale copy is revalidated with If-Modified-Since', async () => {
      h.fake.resource('/repos/octo/hello/tags', { body: '[]', etag: false })
      await h.ask('/repos/octo/hello/tags')
      h.clock.advance(61_000)
      assert.equal((await h.ask('/repos/octo/hello/tags')).cache, 'REVALIDATED')
      assert.ok(h.fake.log.at(-1)?.headers['if-modified-since'] !== undefined)
    })

    it("a client's Cache-Control: no-cache makes even a fresh copy go upstream", async () => {
      await h.ask(ISSUES)
      const again = await h.ask(ISSUES, { 'cache-control': 'no-cache' })
      assert.equal(again.cache, 'REVALIDATED')
      assert.equal(h.fake.count(), 2)
    })

    it("a credential's private copy is never served blind: each request is a (free) 304 with its own ETag", async () => {
      const auth = { authorization: 'Bearer alice' }
      assert.equal((await h.ask(ISSUES, auth)).cache, 'MISS')
      const again = await h.ask(ISSUES, auth)
      assert.equal(again.cache, 'REVALIDATED')
      assert.equal(h.fake.log.at(-1)?.headers['if-none-match'], h.fake.etagFor(ISSUES, 'alice'))
      assert.equal(h.fake.count('alice'), 2)
    })

    it("another credential gets a stored shared resource only after its own If-Modified-Since 304, never with the other token's ETag", async () => {
      await h.ask(ISSUES, { authorization: 'Bearer alice' })
      const bob = await h.ask(ISSUES, { authorization: 'Bearer bob' })
      assert.equal(bob.cache, 'REVALIDATED')
      assert.equal(bob.body.toString(), ISSUES_BODY)
      const sent = h.fake.log.at(-1)
      assert.equal(sent?.token, 'bob')
      assert.equal(sent?.headers['if-none-match'], undefined, "alice's ETag would be a charged 200 for bob")
      assert.ok(sent?.headers['if-modified-since'] !== undefined)
    })

    it("a credential-specific resource (/user) is never revalidated from another credential's copy", async () => {
      await h.ask('/user', { authorization: 'Bearer alice' })
      const bob = await h.ask('/user', { authorization: 'Bearer bob' })
      assert.equal(bob.cache, 'MISS')
      const sent = h.fake.log.at(-1)
      assert.equal(sent?.conditional, false)
    })

    it("an anonymous client is not given a credential's private copy", async () => {
      await h.ask(ISSUES, { authorization: 'Bearer alice' })
      const anon = await h.ask(ISSUES)
      assert.notEqual(anon.cache, 'HIT')
      assert.equal(h.fake.log.at(-1)?.token, undefined)
    })

    it('records are partitioned by a keyed hash of the credential; the token reaches neither record nor policy', async () => {
      await h.ask(ISSUES, { authorization: 'Bearer alice' })
      await h.ask(ISSUES)
      const records = await h.records.all(`github ${ISSUES}`)
      const scopes = records.map(r => r.scope).sort()
      assert.equal(scopes.length, 2)
      assert.ok(scopes.includes('anon'))
      const scope = scopes.find(s => s !== 'anon') ?? ''
      assert.match(scope, /^[0-9a-f]{32}$/)
      assert.equal(scope, h.scopes.of('Bearer alice'))
      assert.ok(!JSON.stringify(records).includes('alice'), 'no record holds the token')
    })

    it('a response with Vary on a header outside the key is served only to requests that match it', async () => {
      h.fake.resource('/repos/octo/hello/readme', { body: 'readme', vary: 'Accept, X-Client' })
      assert.equal((await h.ask('/repos/octo/hello/readme', { 'x-client': 'a' })).cache, 'MISS')
      assert.equal((await h.ask('/repos/octo/hello/readme', { 'x-client': 'a' })).cache, 'HIT')
      assert.notEqual((await h.ask('/repos/octo/hello/readme', { 'x-client': 'b' })).cache, 'HIT')
      assert.equal(h.fake.count(), 2)
    })

    it("each Accept has its own record; GitHub's names of the default media type share one", async () => {
      h.fake.resource('/repos/octo/hello/contents/a.txt', {
        body: accept => accept === 'application/vnd.github.raw' ? 'raw bytes' : '{"content":"cmF3IGJ5dGVz"}'
      })
      const json = await h.ask('/repos/octo/hello/contents/a.txt', { accept: 'application/vnd.github+json' })
      const raw = await h.ask('/repos/octo/hello/contents/a.txt', { accept: 'application/vnd.github.raw' })
      assert.equal(raw.cache, 'MISS')
      assert.equal(raw.body.toString(), 'raw bytes')
      assert.equal(json.body.toString(), '{"content":"cmF3IGJ5dGVz"}')
      const v3 = await h.ask('/repos/octo/hello/contents/a.txt', { accept: 'application/vnd.github.v3+json' })
      assert.equal(v3.cache, 'HIT')
      assert.equal(v3.body.toString(), json.body.toString())
    })

    it('a no-store response is passed on and never stored', async () => {
      h.fake.resource('/repos/octo/hello/secret-ish', { body: 'x', cacheControl: 'no-store' })
      assert.equal((await h.ask('/repos/octo/hello/secret-ish')).cache, 'MISS')
      assert.equal((await h.ask('/repos/octo/hello/secret-ish')).cache, 'MISS')
      assert.deepEqual(await h.records.all('github /repos/octo/hello/secret-ish'), [])
      assert.equal(h.fake.count(), 2)
    })

    it('errors (404, 403 rate limit spent, 429 secondary limit) are passed on with their headers and not stored', async () => {
      const missing = await h.ask('/repos/octo/nothing')
      assert.equal(missing.status, 404)
      h.fake.remaining('alice', 0)
      const spent = await h.ask(ISSUES, { authorization: 'Bearer alice' })
      assert.equal(spent.status, 403)
      assert.equal(spent.headers['x-ratelimit-remaining'], '0')
      h.fake.secondaryLimitNext(30)
      const limited = await h.ask(ISSUES)
      assert.equal(limited.status, 429)
      assert.equal(limited.headers['retry-after'], '30')
      assert.equal((await h.ask(ISSUES)).cache, 'MISS', 'the 429 was not stored')
      assert.deepEqual(await h.records.all('github /repos/octo/nothing'), [])
    })

    it("a refused token gets the upstream's 401, nothing stored", async () => {
      const answer = await h.ask(ISSUES, { authorization: 'Bearer mallory' })
      assert.equal(answer.status, 401)
      assert.match(answer.body.toString(), /Bad credentials/)
      assert.equal((await h.records.all(`github ${ISSUES}`)).length, 0)
    })

    it('concurrent identical GETs share one upstream request', async () => {
      const gate = h.fake.hold()
      const answers = Promise.all([1, 2, 3, 4, 5].map(async () => await h.ask(ISSUES)))
      await gate.arrived(1)
      gate.release()
      const all = await answers
      assert.equal(h.fake.count(), 1)
      for (const a of all) assert.equal(a.body.toString(), ISSUES_BODY)
    })

    it('a client that leaves stops only its share; when every client left the upstream request is aborted', async () => {
      const gate = h.fake.hold()
      const left = new AbortController()
      const stays = h.ask(ISSUES, {}, new AbortController().signal)
      const leaves = h.ask(ISSUES, {}, left.signal)
      await gate.arrived(1)
      left.abort(new Error('client closed'))
      await new Promise(resolve => setImmediate(resolve))
      assert.equal(h.fake.aborted, 0, 'the other client still waits for it')
      gate.release()
      assert.equal((await stays).status, 200)
      await leaves.catch(() => {})
      assert.equal(h.fake.count(), 1)

      h.clock.advance(61_000)
      const gate2 = h.fake.hold()
      const only = new AbortController()
      const alone = h.ask(ISSUES, {}, only.signal)
      await gate2.arrived(1)
      only.abort(new Error('client closed'))
      await assert.rejects(alone)
      assert.equal(h.fake.aborted, 1)
      gate2.release()
    })

    it('a body larger than maxBody is passed through and not stored', async () => {
      await h.close()
      h = await apiHarness({ maxBody: 16 })
      h.fake.resource('/repos/octo/hello/big', { body: 'x'.repeat(17) })
      const first = await h.ask('/repos/octo/hello/big')
      assert.equal(first.body.byteLength, 17)
      assert.equal((await h.ask('/repos/octo/hello/big')).cache, 'MISS')
      assert.equal(h.fake.count(), 2)
    })

    it('when a body leaves the blob store its records are forgotten: the next request is a MISS', async () => {
      await h.ask(ISSUES)
      await h.resolver.forgetBody(sha256Digest(Buffer.from(ISSUES_BODY)))
      assert.deepEqual(await h.records.all(`github ${ISSUES}`), [])
      assert.equal((await h.ask(ISSUES)).cache, 'MISS')
    })

    it('hit() answers only fresh in-memory copies, without I/O', async () => {
      const req = { upstream: h.fake.api, path: ISSUES, headers: {} }
      assert.equal(h.resolver.hit(req), undefined)
      await h.resolver.get(req, { signal: new AbortController().signal })
      assert.equal(h.resolver.hit(req)?.cache, 'HIT')
      h.clock.advance(61_000)
      assert.equal(h.resolver.hit(req), undefined, 'stale: get revalidates it')
    })

    it('credentialLabel is anon or a short hash, never the token', () => {
      assert.equal(h.resolver.credentialLabel('github', undefined), 'anon')
      const label = h.resolver.credentialLabel('github', 'Bearer alice')
      assert.match(label, /^[0-9a-f]{12}$/)
      assert.equal(label, h.scopes.of('Bearer alice').slice(0, 12))
    })
  })

  describe('bodies over maxBody, through a real ApiClient (bounded reads)', () => {
    const BIG = '/repos/octo/hello/big'
    const BIG_BODY = 'x'.repeat(100_000)

    beforeEach(async () => {
      h = await apiHarness({ maxBody: 16, overHttp: true })
      h.fake.token('alice').repo('octo/hello').resource(BIG, { body: BIG_BODY }).resource(ISSUES, { body: '[]' })
    })

    it("is streamed whole, a MISS with the upstream's Content-Length, and never stored", async () => {
      const first = await h.ask(BIG)
      assert.equal(first.streamed, true)
      assert.equal(first.cache, 'MISS')
      assert.equal(first.body.toString(), BIG_BODY)
      assert.equal(first.headers['content-length'], String(BIG_BODY.length))
      const second = await h.ask(BIG)
      assert.equal(second.cache, 'MISS')
      assert.equal(second.body.byteLength, BIG_BODY.length)
      assert.equal(h.fake.count(), 2)
      assert.deepEqual(await h.records.all(`github ${BIG}`), [])
    })

    it('concurrent identical GETs still share one upstream request: each client gets the whole body', async () => {
      const all = await Promise.all([1, 2, 3, 4, 5].map(async () => await h.ask(BIG, { authorization: 'Bearer alice' })))
      assert.equal(h.fake.count(), 1)
      for (const a of all) {
        assert.equal(a.streamed, true)
        assert.equal(a.body.toString(), BIG_BODY)
      }
    })

    it('a body within maxBody is read whole and stored, as before', async () => {
      const small = await h.ask(ISSUES)
      assert.equal(small.streamed, false)
      assert.equal((await h.ask(ISSUES)).cache, 'HIT')
    })
  })
})
