import assert from 'node:assert/strict'
import { etagOf, ISSUES_PATH, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'

/** The fake api.github.com behaves like the real one where a caching proxy depends on it. */
describe('fixture: fake GitHub API', function () {
  this.timeout(20_000)
  let gh: FakeGitHub

  beforeEach(async () => { gh = await startFakeGitHub() })
  afterEach(async () => { await gh.stop() })

  const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, text: string }> => {
    const res = await fetch(`${gh.url}${path}`, { headers, signal: AbortSignal.timeout(5_000) })
    return { status: res.status, headers: res.headers, text: await res.text() }
  }

  it('listens on 127.0.0.1', () => {
    assert.match(gh.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(gh.url, `http://127.0.0.1:${gh.port}`)
  })

  it('anonymous GET: 200, strong sha256 ETag, public Cache-Control, Vary, Last-Modified, rate-limit headers', async () => {
    const res = await get('/repos/acme/public')
    assert.equal(res.status, 200)
    assert.equal(JSON.parse(res.text).full_name, 'acme/public')
    assert.equal(res.headers.get('etag'), etagOf(res.text))
    assert.match(res.headers.get('etag') ?? '', /^"[0-9a-f]{64}"$/)
    assert.equal(res.headers.get('cache-control'), 'public, max-age=60, s-maxage=60')
    assert.equal(res.headers.get('vary'), 'Accept, Authorization, Accept-Encoding')
    assert.ok(!Number.isNaN(Date.parse(res.headers.get('last-modified') ?? '')))
    assert.equal(res.headers.get('x-ratelimit-limit'), '5000')
    assert.equal(res.headers.get('x-ratelimit-remaining'), '4999')
    assert.equal(res.headers.get('x-ratelimit-used'), '1')
    assert.match(res.headers.get('x-ratelimit-reset') ?? '', /^\d{10}$/)
    assert.equal(gh.rateLimit('anon'), 4999)
    assert.equal(gh.etag('/repos/acme/public'), res.headers.get('etag'))
  })

  it('If-None-Match matching: 304 with validators and rate headers, no body, no rate-limit cost', async () => {
    const first = await get('/repos/acme/public', { authorization: 'token alice' })
    const etag = first.headers.get('etag') ?? ''
    assert.equal(gh.rateLimit('alice'), 4999)
    for (const inm of [etag, `W/${etag}`, `"nope", ${etag}`, '*']) {
      const res = await get('/repos/acme/public', { authorization: 'token alice', 'if-none-match': inm })
      assert.equal(res.status, 304, inm)
      assert.equal(res.text, '')
      assert.equal(res.headers.get('etag'), etag)
      assert.equal(res.headers.get('cache-control'), 'private, max-age=60, s-maxage=60')
      assert.equal(res.headers.get('vary'), 'Accept, Authorization, Accept-Encoding')
      assert.ok(res.headers.get('last-modified'))
      assert.equal(res.headers.get('x-ratelimit-remaining'), '4999')
      assert.equal(res.headers.get('x-ratelimit-used'), '1')
    }
    const other = await get('/repos/acme/public', { authorization: 'token alice', 'if-none-match': '"something-else"' })
    assert.equal(other.status, 200)
    assert.equal(other.headers.get('x-ratelimit-remaining'), '4998')
    assert.equal(gh.rateLimit('alice'), 4998)
    assert.equal(gh.rateLimit('anon'), 5000, 'anonymous bucket untouched')
  })

  it('If-Modified-Since not older than Last-Modified: 304 (when there is no If-None-Match)', async () => {
    const first = await get('/repos/acme/public')
    const lm = first.headers.get('last-modified') ?? ''
    assert.equal((await get('/repos/acme/public', { 'if-modified-since': lm })).status, 304)
    assert.equal((await get('/repos/acme/public', { 'if-modified-since': new Date(Date.parse(lm) - 5000).toUTCString() })).status, 200)
    assert.equal((await get('/repos/acme/public', { 'if-modified-since': lm, 'if-none-match': '"x"' })).status, 200, 'If-None-Match wins')
  })

  it('authenticated: private Cache-Control; Bearer works too; each token has its own bucket', async () => {
    const a = await get('/repos/acme/private', { authorization: 'token alice' })
    assert.equal(a.status, 200)
    assert.equal(JSON.parse(a.text).full_name, 'acme/private')
    assert.equal(a.headers.get('cache-control'), 'private, max-age=60, s-maxage=60')
    const c = await get('/repos/acme/private', { authorization: 'Bearer carol' })
    assert.equal(c.status, 200)
    assert.equal(c.headers.get('etag'), a.headers.get('etag'), 'same content, same ETag for every token')
    assert.equal(gh.rateLimit('alice'), 4999)
    assert.equal(gh.rateLimit('carol'), 4999)
    assert.equal(gh.rateLimit('bob'), 5000)
  })

  it('a private repository is 404 Not Found for a token without access and for anonymous', async () => {
    for (const headers of [{ authorization: 'token bob' }, {} as Record<string, string>]) {
      const res = await get('/repos/acme/private', headers)
      assert.equal(res.status, 404)
      assert.equal(JSON.parse(res.text).message, 'Not Found')
      assert.equal(res.headers.get('etag'), null)
    }
    // Even with the right ETag: access is checked first.
    const etag = gh.etag('/repos/acme/private') ?? ''
    assert.equal((await get('/repos/acme/private', { authorization: 'token bob', 'if-none-match': etag })).status, 404)
    assert.equal(gh.rateLimit('bob'), 4998, '404s count')
  })

  it('an unknown or malformed token is 401 Bad credentials', async () => {
    for (const authorization of ['token mallory', 'Bearer mallory', 'Basic YWxpY2U6eA==']) {
      const res = await get('/repos/acme/public', { authorization })
      assert.equal(res.status, 401, authorization)
      assert.equal(JSON.parse(res.text).message, 'Bad credentials')
    }
  })

  it('setBody changes the content, the ETag and Last-Modified; the old ETag then gets 200', async () => {
    const before = await get('/repos/acme/public')
    gh.setBody('/repos/acme/public', { full_name: 'acme/public', description: 'changed' })
    const after = await get('/repos/acme/public', { 'if-none-match': before.headers.get('etag') ?? '' })
    assert.equal(after.status, 200)
    assert.equal(JSON.parse(after.text).description, 'changed')
    assert.notEqual(after.headers.get('etag'), before.headers.get('etag'))
    assert.ok(Date.parse(after.headers.get('last-modified') ?? '') > Date.parse(before.headers.get('last-modified') ?? ''))
    gh.setBody('/extra/thing', { ok: true })
    assert.equal((await get('/extra/thing')).status, 200)
  })

  it('issues: 3 pages of 2 with a Link header of absolute URLs to the fake', async () => {
    const p1 = await get(`${ISSUES_PATH}?page=1&per_page=2`)
    assert.equal(p1.status, 200)
    assert.deepEqual(JSON.parse(p1.text).map((i: { number: number }) => i.number), [6, 5])
    assert.equal(p1.headers.get('link'),
      `<${gh.url}${ISSUES_PATH}?page=2&per_page=2>; rel="next", <${gh.url}${ISSUES_PATH}?page=3&per_page=2>; rel="last"`)
    const p2 = await get(`${ISSUES_PATH}?page=2&per_page=2`)
    assert.deepEqual(JSON.parse(p2.text).map((i: { number: number }) => i.number), [4, 3])
    assert.equal(p2.headers.get('link'),
      `<${gh.url}${ISSUES_PATH}?page=1&per_page=2>; rel="prev", <${gh.url}${ISSUES_PATH}?page=3&per_page=2>; rel="next", ` +
      `<${gh.url}${ISSUES_PATH}?page=3&per_page=2>; rel="last", <${gh.url}${ISSUES_PATH}?page=1&per_page=2>; rel="first"`)
    const p3 = await get(`${ISSUES_PATH}?page=3&per_page=2`)
    assert.deepEqual(JSON.parse(p3.text).map((i: { number: number }) => i.number), [2, 1])
    assert.doesNotMatch(p3.headers.get('link') ?? '', /rel="next"/)
    assert.notEqual(p1.headers.get('etag'), p2.headers.get('etag'))
    assert.equal(gh.etag(`${ISSUES_PATH}?page=2&per_page=2`), p2.headers.get('etag'))
    const all = await get(ISSUES_PATH)
    assert.equal(JSON.parse(all.text).length, 6)
    assert.equal(all.headers.get('link'), null, 'one page: no Link')
  })

  it('/nostore says no-store and changes on every request; /rate_limit is free', async () => {
    const a = await get('/nostore')
    const b = await get('/nostore')
    assert.equal(a.headers.get('cache-control'), 'no-store')
    assert.notEqual(a.text, b.text)
    const rl = await get('/rate_limit', { authorization: 'token alice' })
    assert.equal(rl.status, 200)
    assert.equal(JSON.parse(rl.text).resources.core.remaining, 5000)
    assert.equal(gh.rateLimit('alice'), 5000)
    assert.equal(gh.rateLimit('anon'), 4998)
  })

  it('POST and PATCH echo the JSON body with 201 / 200 and no Cache-Control', async () => {
    const body = JSON.stringify({ title: 'new issue', labels: ['x'] })
    const post = await fetch(`${gh.url}${ISSUES_PATH}`, { method: 'POST', headers: { authorization: 'token alice', 'content-type': 'application/json' }, body })
    assert.equal(post.status, 201)
    assert.deepEqual(await post.json(), JSON.parse(body))
    assert.equal(post.headers.get('cache-control'), null)
    const patch = await fetch(`${gh.url}${ISSUES_PATH}/3`, { method: 'PATCH', headers: { authorization: 'token alice' }, body: '{"state":"closed"}' })
    assert.equal(patch.status, 200)
    assert.deepEqual(await patch.json(), { state: 'closed' })
    const anon = await fetch(`${gh.url}${ISSUES_PATH}`, { method: 'POST', body })
    await anon.arrayBuffer()
    assert.equal(anon.status, 401)
    assert.equal(gh.count({ method: 'POST' }), 2)
    assert.equal(gh.requests({ method: 'PATCH' })[0]?.body, '{"state":"closed"}')
  })

  it('POST /graphql answers { viewer { login } } with the token, other queries with errors, anonymous with 401', async () => {
    const ask = async (query: string, headers: Record<string, string> = { authorization: 'bearer alice' }): Promise<{ status: number, json: unknown }> => {
      const res = await fetch(`${gh.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query }), signal: AbortSignal.timeout(5_000) })
      return { status: res.status, json: await res.json() }
    }
    assert.deepEqual(await ask('query { viewer { login } }'), { status: 200, json: { data: { viewer: { login: 'alice' } } } })
    const other = await ask('{ repository(owner: "acme", name: "public") { id } }')
    assert.equal(other.status, 200)
    assert.match(JSON.stringify(other.json), /"errors"/)
    assert.equal((await ask('{ viewer { login } }', {})).status, 401)
  })

  it('records requests: method, path with query, authorization, If-None-Match, token, status', async () => {
    await get('/repos/acme/public?x=1', { authorization: 'token alice', 'if-none-match': '"a"' })
    await get('/repos/acme/private')
    const [r1, r2] = gh.requests()
    assert.deepEqual({ ...r1, accept: undefined, userAgent: undefined }, {
      method: 'GET', path: '/repos/acme/public?x=1', authorization: 'token alice', token: 'alice', ifNoneMatch: '"a"', status: 200, accept: undefined, userAgent: undefined
    })
    assert.equal(r2?.token, 'anon')
    assert.equal(r2?.status, 404)
    assert.equal(r2?.authorization, undefined)
    assert.equal(gh.count({ token: 'alice', conditional: true }), 1)
    assert.equal(gh.count({ path: '/repos/acme/private', status: 404 }), 1)
    assert.equal(gh.count({ pathIncludes: 'acme' }), 2)
    gh.clearRequests()
    assert.equal(gh.count(), 0)
  })

  it('delayMs holds every answer back; requests are recorded on arrival', async () => {
    gh.setDelay(300)
    const t0 = Date.now()
    const pending = get('/repos/acme/public')
    await new Promise(resolve => setTimeout(resolve, 100))
    assert.equal(gh.count({ status: 0 }), 1, 'recorded, not answered yet')
    assert.equal((await pending).status, 200)
    assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`)
  })

  it('at 0 remaining the answer is 403 rate limit exceeded', async () => {
    const small = await startFakeGitHub({ rateLimit: 2 })
    try {
      const go = async (): Promise<number> => (await fetch(`${small.url}/repos/acme/public`)).status
      assert.deepEqual([await go(), await go(), await go()], [200, 200, 403])
      assert.equal(small.rateLimit('anon'), 0)
    } finally {
      await small.stop()
    }
  })
})
