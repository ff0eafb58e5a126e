import assert from 'node:assert/strict'
import { createHash, generateKeyPairSync, sign } from 'node:crypto'
import { createAppAuth } from '@octokit/auth-app'
import { request } from '@octokit/request'
import {
  etagOf,
  ISSUES_PATH,
  PRIVATE_ISSUES_PATH,
  PULLS_PATH,
  startFakeGitHub,
  type FakeGitHub,
  type FakeGitHubApp
} from '../fixtures/fake-github.js'
import { startFakeGitHubProcess } from '../fixtures/fake-github-child.js'

interface Got {
  status: number
  headers: Headers
  text: string
}

const WEAK_ETAG = /^W\/"[0-9a-f]{64}"$/
const CACHE_AUTH = 'private, max-age=60, s-maxage=60'
const CACHE_ANON = 'public, max-age=60, s-maxage=60'
const VARY = 'Accept, Authorization, Accept-Encoding'
const tokenAuth = (t: string): Record<string, string> => ({ authorization: `token ${t}` })

/** The fake api.github.com behaves like the real one where a caching proxy depends on it. */
describe('fixture: fake GitHub API', function () {
  this.timeout(20_000)
  let gh: FakeGitHub

  beforeEach(async () => {
    gh = await startFakeGitHub()
  })
  afterEach(async () => {
    await gh.stop()
  })

  const getFrom = async (base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> => {
    const res = await fetch(`${base}${path}`, { method, headers, signal: AbortSignal.timeout(5_000) })
    return { status: res.status, headers: res.headers, text: await res.text() }
  }
  const get = async (path: string, headers: Record<string, string> = {}): Promise<Got> => await getFrom(gh.url, path, headers)
  const numbers = (g: Got): number[] => (JSON.parse(g.text) as Array<{ number: number }>).map(i => i.number)

  it('listens on 127.0.0.1', () => {
    assert.match(gh.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(gh.url, `http://127.0.0.1:${gh.port}`)
  })

  it('anonymous GET: 200, weak ETag over anon + body, public Cache-Control, Vary, Last-Modified, rate-limit headers', async () => {
    const res = await get('/repos/acme/public')
    assert.equal(res.status, 200)
    const body = JSON.parse(res.text)
    assert.equal(body.full_name, 'acme/public')
    assert.equal(body.private, false)
    assert.equal(body.visibility, 'public')
    assert.equal(body.permissions, undefined, 'no permissions for anonymous')
    const expected = `W/"${createHash('sha256').update('anon').update('\n').update(res.text).digest('hex')}"`
    assert.equal(res.headers.get('etag'), expected)
    assert.equal(etagOf(res.text), expected)
    assert.match(res.headers.get('etag') ?? '', WEAK_ETAG)
    assert.equal(res.headers.get('cache-control'), CACHE_ANON)
    assert.equal(res.headers.get('vary'), VARY)
    assert.ok(!Number.isNaN(Date.parse(res.headers.get('last-modified') ?? '')))
    assert.equal(res.headers.get('x-ratelimit-limit'), '5000')
    assert.equal(res.headers.get('x-ratelimit-remaining'), '4999')
    assert.equal(res.headers.get('x-ratelimit-used'), '1')
    assert.equal(res.headers.get('x-ratelimit-resource'), 'core')
    assert.match(res.headers.get('x-ratelimit-reset') ?? '', /^\d{10}$/)
    assert.equal(gh.rateLimit('anon'), 4999)
    assert.equal(gh.spent('anon'), 1)
    assert.equal(gh.etag('/repos/acme/public'), res.headers.get('etag'))
  })

  it('ETags are per token: same bytes, different ETag; etag(path, token) tells which', async () => {
    for (const path of ['/repos/acme/private', `${ISSUES_PATH}?page=1&per_page=2`, '/repos/acme/public/contents/README.md']) {
      const a = await get(path, tokenAuth('alice'))
      const c = await get(path, { authorization: 'Bearer carol' })
      assert.equal(a.status, 200, path)
      assert.equal(a.text, c.text, `${path}: same body for alice and carol`)
      assert.match(a.headers.get('etag') ?? '', WEAK_ETAG)
      assert.notEqual(a.headers.get('etag'), c.headers.get('etag'), `${path}: different ETags`)
      assert.equal(a.headers.get('etag'), etagOf(a.text, 'alice'))
      assert.equal(c.headers.get('etag'), etagOf(c.text, 'carol'))
      assert.equal(gh.etag(path, 'alice'), a.headers.get('etag'))
      assert.equal(gh.etag(path, 'carol'), c.headers.get('etag'))
    }
    const anon = await get(`${ISSUES_PATH}?page=1&per_page=2`)
    assert.notEqual(anon.headers.get('etag'), gh.etag(`${ISSUES_PATH}?page=1&per_page=2`, 'alice'), 'anonymous and a token differ too')
    assert.equal(anon.headers.get('etag'), gh.etag(`${ISSUES_PATH}?page=1&per_page=2`))
  })

  it("If-None-Match with the token's own ETag: 304 with validators and rate headers, no body, free", async () => {
    const first = await get('/repos/acme/public', tokenAuth('alice'))
    const etag = first.headers.get('etag') ?? ''
    const strong = etag.replace(/^W\//, '')
    assert.equal(gh.rateLimit('alice'), 4999)
    for (const inm of [etag, strong, `"nope", ${etag}`, `W/"nope", ${strong}`, '*']) {
      const res = await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-none-match': inm })
      assert.equal(res.status, 304, inm)
      assert.equal(res.text, '')
      assert.equal(res.headers.get('etag'), etag)
      assert.equal(res.headers.get('cache-control'), CACHE_AUTH)
      assert.equal(res.headers.get('vary'), VARY)
      assert.equal(res.headers.get('last-modified'), first.headers.get('last-modified'))
      assert.equal(res.headers.get('x-ratelimit-remaining'), '4999')
      assert.equal(res.headers.get('x-ratelimit-used'), '1')
    }
    const other = await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-none-match': '"something-else"' })
    assert.equal(other.status, 200)
    assert.equal(other.headers.get('x-ratelimit-remaining'), '4998')
    assert.equal(gh.spent('alice'), 2)
    assert.equal(gh.rateLimit('anon'), 5000, 'anonymous bucket untouched')
    assert.equal(gh.count({ token: 'alice', status: 304, charged: false }), 5)
  })

  it("another token's ETag never matches: 200, charged (a fresh per-job token gains nothing from the last job's ETag)", async () => {
    const job1 = await get('/repos/acme/private', tokenAuth('alice'))
    const job1Etag = job1.headers.get('etag') ?? ''
    gh.addToken('ghs_job2', { repos: ['acme/private'] })
    const job2 = await get('/repos/acme/private', { ...tokenAuth('ghs_job2'), 'if-none-match': job1Etag })
    assert.equal(job2.status, 200)
    assert.equal(job2.text, job1.text, 'same bytes')
    assert.notEqual(job2.headers.get('etag'), job1Etag)
    assert.equal(gh.spent('ghs_job2'), 1)
    assert.equal(gh.requests({ token: 'ghs_job2' })[0]?.charged, true)
    // Weak or strong form, in a list: still another token's.
    const again = await get('/repos/acme/private', { ...tokenAuth('carol'), 'if-none-match': `${job1Etag.replace(/^W\//, '')}, "x"` })
    assert.equal(again.status, 200)
    // Its own ETag does give the new token a free 304.
    const own = await get('/repos/acme/private', { ...tokenAuth('ghs_job2'), 'if-none-match': job2.headers.get('etag') ?? '' })
    assert.equal(own.status, 304)
    assert.equal(gh.spent('ghs_job2'), 1)
  })

  it('an anonymous 304 is charged to anon like any other answer', async () => {
    const first = await get('/repos/acme/public')
    const byEtag = await get('/repos/acme/public', { 'if-none-match': first.headers.get('etag') ?? '' })
    assert.equal(byEtag.status, 304)
    assert.equal(byEtag.headers.get('x-ratelimit-used'), '2')
    assert.equal(byEtag.headers.get('x-ratelimit-remaining'), '4998')
    const byDate = await get('/repos/acme/public', { 'if-modified-since': first.headers.get('last-modified') ?? '' })
    assert.equal(byDate.status, 304)
    assert.equal(gh.spent('anon'), 3)
    assert.deepEqual(gh.requests().map(r => [r.status, r.charged]), [[200, true], [304, true], [304, true]])
  })

  it('Last-Modified only on single resources (repository, contents, user), not on lists', async () => {
    for (const [path, headers] of [
      ['/repos/acme/public', {}],
      ['/repos/acme/private', tokenAuth('alice')],
      ['/repos/acme/public/contents/README.md', {}],
      ['/repos/acme/private/contents/README.md', tokenAuth('alice')],
      ['/users/octocat', {}],
      ['/user', tokenAuth('alice')]
    ] as Array<[string, Record<string, string>]>) {
      const res = await get(path, headers)
      assert.equal(res.status, 200, path)
      assert.ok(!Number.isNaN(Date.parse(res.headers.get('last-modified') ?? '')), `${path} has Last-Modified`)
    }
    for (const path of [ISSUES_PATH, `${ISSUES_PATH}?page=2&per_page=2`, PULLS_PATH, `${PULLS_PATH}?per_page=1`, PRIVATE_ISSUES_PATH]) {
      const res = await get(path, tokenAuth('alice'))
      assert.equal(res.status, 200, path)
      assert.match(res.headers.get('etag') ?? '', WEAK_ETAG, path)
      assert.equal(res.headers.get('last-modified'), null, `${path}: a list has no Last-Modified`)
    }
  })

  it('If-Modified-Since: honoured on single resources only, when there is no If-None-Match; charged only when not 304 or anonymous', async () => {
    const first = await get('/repos/acme/public', tokenAuth('alice'))
    const lm = first.headers.get('last-modified') ?? ''
    const notModified = await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-modified-since': lm })
    assert.equal(notModified.status, 304)
    assert.equal(notModified.headers.get('etag'), first.headers.get('etag'))
    assert.equal(gh.spent('alice'), 1, 'an authorized 304 is free')
    assert.equal(
      (await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-modified-since': new Date(Date.parse(lm) - 5000).toUTCString() }))
        .status,
      200
    )
    assert.equal(
      (await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-modified-since': lm, 'if-none-match': '"x"' })).status,
      200,
      'If-None-Match wins'
    )
    assert.equal((await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-modified-since': 'not a date' })).status, 200)
    // Not per token: carol's request with alice's date is a 304 too.
    assert.equal((await get('/repos/acme/public', { ...tokenAuth('carol'), 'if-modified-since': lm })).status, 304)
    // A list ignores it, even with a date in the future.
    const future = new Date(Date.now() + 86_400_000).toUTCString()
    assert.equal((await get(ISSUES_PATH, { ...tokenAuth('alice'), 'if-modified-since': future })).status, 200)
    assert.equal((await get(PULLS_PATH, { ...tokenAuth('alice'), 'if-modified-since': future })).status, 200)
    assert.equal(gh.spent('alice'), 6)
  })

  it('authenticated: private Cache-Control, permissions on a repository (same for every token); Bearer works; one bucket per token', async () => {
    const a = await get('/repos/acme/private', tokenAuth('alice'))
    assert.equal(a.status, 200)
    const body = JSON.parse(a.text)
    assert.equal(body.full_name, 'acme/private')
    assert.equal(body.private, true)
    assert.equal(body.visibility, 'private')
    assert.deepEqual(body.permissions, { admin: false, push: false, pull: true })
    assert.equal(a.headers.get('cache-control'), CACHE_AUTH)
    const c = await get('/repos/acme/private', { authorization: 'Bearer carol' })
    assert.equal(c.status, 200)
    assert.equal(c.text, a.text)
    const pub = JSON.parse((await get('/repos/acme/public', tokenAuth('bob'))).text)
    assert.deepEqual(pub.permissions, { admin: false, push: false, pull: true })
    assert.deepEqual({ ...pub, permissions: undefined }, { ...gh.body('/repos/acme/public') as object, permissions: undefined })
    assert.equal(gh.rateLimit('alice'), 4999)
    assert.equal(gh.rateLimit('carol'), 4999)
    assert.equal(gh.rateLimit('bob'), 4999)
    assert.equal(gh.rateLimit('anon'), 5000)
  })

  it('anything under a private repository is 404 for a token without access and for anonymous; unknown paths are 404, charged', async () => {
    const paths = ['/repos/acme/private', PRIVATE_ISSUES_PATH, '/repos/acme/private/contents/README.md', '/repos/acme/private/nothing-here']
    for (const headers of [tokenAuth('bob'), {} as Record<string, string>]) {
      for (const path of paths) {
        const res = await get(path, headers)
        assert.equal(res.status, 404, `${path} ${JSON.stringify(headers)}`)
        assert.equal(JSON.parse(res.text).message, 'Not Found')
        assert.equal(res.headers.get('etag'), null)
        assert.equal(res.headers.get('last-modified'), null)
      }
    }
    // Even with alice's ETag: access is checked first.
    const etag = gh.etag('/repos/acme/private', 'alice') ?? ''
    assert.match(etag, WEAK_ETAG)
    assert.equal((await get('/repos/acme/private', { ...tokenAuth('bob'), 'if-none-match': etag })).status, 404)
    assert.equal(gh.spent('bob'), 5, '404s count')
    assert.equal(gh.spent('anon'), 4)
    assert.equal((await get('/repos/acme/private/nothing-here', tokenAuth('alice'))).status, 404)
    assert.equal((await get('/no/such/thing', tokenAuth('alice'))).status, 404)
    assert.equal((await get('/repos/acme/public/nothing', tokenAuth('alice'))).status, 404)
    assert.equal(gh.spent('alice'), 3)
    assert.equal(gh.count({ status: 404, charged: false }), 0)
  })

  it('an unknown, malformed or expired token is 401 Bad credentials, not charged', async () => {
    gh.addToken('expired', { repos: ['acme/private'], expiresAt: Date.now() - 1 })
    for (const authorization of ['token mallory', 'Bearer mallory', 'Basic YWxpY2U6eA==', 'token expired', 'Bearer expired']) {
      const res = await get('/repos/acme/public', { authorization })
      assert.equal(res.status, 401, authorization)
      assert.equal(JSON.parse(res.text).message, 'Bad credentials')
      assert.equal(res.headers.get('etag'), null)
    }
    assert.equal((await get('/rate_limit', tokenAuth('expired'))).status, 401)
    assert.equal(gh.spent('expired'), 0)
    assert.equal(gh.spent('mallory'), 0)
    assert.equal(gh.count({ status: 401, charged: true }), 0)
    assert.equal(gh.requests({ token: '(malformed)' }).length, 1)
    assert.equal(gh.etag('/repos/acme/public', 'expired'), undefined)
    assert.equal(gh.etag('/repos/acme/public', 'mallory'), undefined)
  })

  it('addToken: a token minted at runtime reads public repositories, and private ones only when listed; login; expiry', async () => {
    gh.addToken('ghs_public_only')
    gh.addToken('ghs_job', { repos: ['acme/private'], login: 'github-actions[bot]', expiresAt: Date.now() + 60_000 })
    assert.equal((await get('/repos/acme/public', tokenAuth('ghs_public_only'))).status, 200)
    assert.equal((await get(ISSUES_PATH, tokenAuth('ghs_public_only'))).status, 200)
    assert.equal((await get('/repos/acme/private', tokenAuth('ghs_public_only'))).status, 404)
    assert.equal((await get('/repos/acme/private', tokenAuth('ghs_job'))).status, 200)
    assert.deepEqual(numbers(await get(PRIVATE_ISSUES_PATH, tokenAuth('ghs_job'))), [2, 1])
    assert.equal(JSON.parse((await get('/user', tokenAuth('ghs_job'))).text).login, 'github-actions[bot]')
    assert.equal(
      JSON.parse((await get('/user', tokenAuth('ghs_public_only'))).text).login,
      'ghs_public_only',
      'login defaults to the token'
    )
    gh.addToken('ghs_job', { repos: ['acme/private'], expiresAt: Date.now() - 1 })
    assert.equal((await get('/repos/acme/public', tokenAuth('ghs_job'))).status, 401, 'replaced with an expired one')
    assert.equal(gh.etag('/repos/acme/private', 'ghs_public_only'), undefined, 'etag(): no ETag for a 404')
  })

  it('contents: a base64 file object, public and private', async () => {
    const res = await get('/repos/acme/public/contents/README.md')
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('cache-control'), CACHE_ANON)
    const file = JSON.parse(res.text) as Record<string, unknown>
    assert.equal(file.type, 'file')
    assert.equal(file.encoding, 'base64')
    assert.equal(file.name, 'README.md')
    assert.equal(file.path, 'README.md')
    const bytes = Buffer.from(String(file.content), 'base64')
    assert.match(bytes.toString('utf8'), /^# acme\/public/)
    assert.equal(file.size, bytes.length)
    assert.equal(file.sha, createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex'), 'the git blob id')
    const priv = await get('/repos/acme/private/contents/README.md', tokenAuth('carol'))
    assert.equal(priv.status, 200)
    assert.match(Buffer.from(String(JSON.parse(priv.text).content), 'base64').toString('utf8'), /^# acme\/private/)
  })

  it("users: /users/octocat for anyone; /user is the token's {login, id}, anonymous 401 Requires authentication (charged)", async () => {
    const octo = await get('/users/octocat')
    assert.equal(octo.status, 200)
    assert.equal(JSON.parse(octo.text).login, 'octocat')
    assert.equal(JSON.parse(octo.text).id, 1)
    const me = await get('/user', tokenAuth('alice'))
    assert.equal(me.status, 200)
    const body = JSON.parse(me.text) as { login: string, id: number }
    assert.deepEqual(Object.keys(body).sort(), ['id', 'login'])
    assert.equal(body.login, 'alice')
    assert.equal(typeof body.id, 'number')
    assert.equal(me.headers.get('cache-control'), CACHE_AUTH)
    assert.equal(me.headers.get('etag'), gh.etag('/user', 'alice'))
    assert.equal(JSON.parse((await get('/user', tokenAuth('carol'))).text).login, 'carol')
    assert.equal((await get('/user', { ...tokenAuth('alice'), 'if-none-match': me.headers.get('etag') ?? '' })).status, 304)
    const anon = await get('/user')
    assert.equal(anon.status, 401)
    assert.equal(JSON.parse(anon.text).message, 'Requires authentication')
    assert.equal(gh.spent('anon'), 2)
    assert.equal(gh.etag('/user'), undefined)
    assert.equal(gh.etag('/users/octocat'), octo.headers.get('etag'))
  })

  it('setBody changes the content, the ETags and Last-Modified; the old ETag then gets 200', async () => {
    const before = await get('/repos/acme/public', tokenAuth('alice'))
    gh.setBody('/repos/acme/public', { full_name: 'acme/public', description: 'changed' })
    const after = await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-none-match': before.headers.get('etag') ?? '' })
    assert.equal(after.status, 200)
    assert.equal(JSON.parse(after.text).description, 'changed')
    assert.notEqual(after.headers.get('etag'), before.headers.get('etag'))
    assert.ok(Date.parse(after.headers.get('last-modified') ?? '') > Date.parse(before.headers.get('last-modified') ?? ''))
    assert.equal(
      (await get('/repos/acme/public', { ...tokenAuth('alice'), 'if-modified-since': before.headers.get('last-modified') ?? '' })).status,
      200
    )
    gh.setBody('/users/octocat', { login: 'octocat', id: 1, name: 'renamed' })
    assert.equal(JSON.parse((await get('/users/octocat')).text).name, 'renamed')
    gh.setBody('/extra/thing', { ok: true })
    const extra = await get('/extra/thing')
    assert.equal(extra.status, 200)
    assert.equal(extra.headers.get('last-modified'), null, 'not a single-resource path')
    gh.setBody(ISSUES_PATH, [{ number: 9 }])
    assert.deepEqual(numbers(await get(ISSUES_PATH)), [9])
    assert.deepEqual(gh.body(ISSUES_PATH), [{ number: 9 }])
  })

  it('issues: 3 pages of 2 with a Link header of absolute URLs to the fake', async () => {
    const p1 = await get(`${ISSUES_PATH}?page=1&per_page=2`)
    assert.equal(p1.status, 200)
    assert.deepEqual(numbers(p1), [6, 5])
    assert.equal(
      p1.headers.get('link'),
      `<${gh.url}${ISSUES_PATH}?page=2&per_page=2>; rel="next", <${gh.url}${ISSUES_PATH}?page=3&per_page=2>; rel="last"`
    )
    const p2 = await get(`${ISSUES_PATH}?page=2&per_page=2`)
    assert.deepEqual(numbers(p2), [4, 3])
    assert.equal(
      p2.headers.get('link'),
      `<${gh.url}${ISSUES_PATH}?page=1&per_page=2>; rel="prev", <${gh.url}${ISSUES_PATH}?page=3&per_page=2>; rel="next", ` +
        `<${gh.url}${ISSUES_PATH}?page=3&per_page=2>; rel="last", <${gh.url}${ISSUES_PATH}?page=1&per_page=2>; rel="first"`
    )
    const p3 = await get(`${ISSUES_PATH}?page=3&per_page=2`)
    assert.deepEqual(numbers(p3), [2, 1])
    assert.doesNotMatch(p3.headers.get('link') ?? '', /rel="next"/)
    assert.notEqual(p1.headers.get('etag'), p2.headers.get('etag'))
    assert.equal(gh.etag(`${ISSUES_PATH}?page=2&per_page=2`), p2.headers.get('etag'))
    const all = await get(ISSUES_PATH)
    assert.equal(JSON.parse(all.text).length, 6)
    assert.equal(all.headers.get('link'), null, 'one page: no Link')
  })

  it('pulls: 4 pull requests, paginated with Link prev/next/last/first; private issues: 2', async () => {
    const p1 = await get(`${PULLS_PATH}?page=1&per_page=3`, tokenAuth('bob'))
    assert.equal(p1.status, 200)
    assert.deepEqual(numbers(p1), [10, 9, 8])
    const pull = (JSON.parse(p1.text) as Array<Record<string, unknown>>)[0] ?? {}
    assert.equal(pull.state, 'open')
    assert.equal((pull.base as { ref: string }).ref, 'main')
    assert.match((pull.head as { sha: string }).sha, /^[0-9a-f]{40}$/)
    assert.equal(
      p1.headers.get('link'),
      `<${gh.url}${PULLS_PATH}?page=2&per_page=3>; rel="next", <${gh.url}${PULLS_PATH}?page=2&per_page=3>; rel="last"`
    )
    const p2 = await get(`${PULLS_PATH}?page=2&per_page=3`, tokenAuth('bob'))
    assert.deepEqual(numbers(p2), [7])
    assert.equal(
      p2.headers.get('link'),
      `<${gh.url}${PULLS_PATH}?page=1&per_page=3>; rel="prev", <${gh.url}${PULLS_PATH}?page=1&per_page=3>; rel="first"`
    )
    assert.deepEqual(numbers(await get(PULLS_PATH)), [10, 9, 8, 7])
    const priv = await get(PRIVATE_ISSUES_PATH, tokenAuth('alice'))
    assert.equal(priv.status, 200)
    assert.deepEqual(numbers(priv), [2, 1])
    assert.equal(priv.headers.get('cache-control'), CACHE_AUTH)
  })

  it('HEAD answers like GET without a body', async () => {
    const res = await getFrom(gh.url, '/repos/acme/public', tokenAuth('alice'), 'HEAD')
    assert.equal(res.status, 200)
    assert.equal(res.text, '')
    assert.equal(res.headers.get('etag'), gh.etag('/repos/acme/public', 'alice'))
  })

  it('/nostore says no-store and changes on every request; /rate_limit is free', async () => {
    const a = await get('/nostore')
    const b = await get('/nostore')
    assert.equal(a.headers.get('cache-control'), 'no-store')
    assert.notEqual(a.text, b.text)
    assert.equal(a.headers.get('etag'), etagOf(a.text))
    assert.equal(gh.etag('/nostore'), undefined)
    const rl = await get('/rate_limit', tokenAuth('alice'))
    assert.equal(rl.status, 200)
    assert.equal(rl.headers.get('cache-control'), 'no-cache')
    assert.equal(JSON.parse(rl.text).resources.core.remaining, 5000)
    assert.equal(gh.rateLimit('alice'), 5000)
    assert.equal(gh.rateLimit('anon'), 4998)
  })

  it('POST and PATCH echo the JSON body with 201 / 200 and no Cache-Control', async () => {
    const body = JSON.stringify({ title: 'new issue', labels: ['x'] })
    const post = await fetch(`${gh.url}${ISSUES_PATH}`, {
      method: 'POST',
      headers: { authorization: 'token alice', 'content-type': 'application/json' },
      body
    })
    assert.equal(post.status, 201)
    assert.deepEqual(await post.json(), JSON.parse(body))
    assert.equal(post.headers.get('cache-control'), null)
    const patch = await fetch(`${gh.url}${ISSUES_PATH}/3`, {
      method: 'PATCH',
      headers: { authorization: 'token alice' },
      body: '{"state":"closed"}'
    })
    assert.equal(patch.status, 200)
    assert.deepEqual(await patch.json(), { state: 'closed' })
    const anon = await fetch(`${gh.url}${ISSUES_PATH}`, { method: 'POST', body })
    await anon.arrayBuffer()
    assert.equal(anon.status, 401)
    assert.equal(gh.count({ method: 'POST' }), 2)
    assert.equal(gh.requests({ method: 'PATCH' })[0]?.body, '{"state":"closed"}')
    assert.equal(gh.spent('alice'), 2)
  })

  it("POST /graphql answers { viewer { login } } with the token's login, other queries with errors, anonymous with 401", async () => {
    gh.addToken('ghs_x', { login: 'someone' })
    const ask = async (
      query: string,
      headers: Record<string, string> = { authorization: 'bearer alice' }
    ): Promise<{ status: number, json: unknown }> => {
      const res = await fetch(`${gh.url}/graphql`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query }),
        signal: AbortSignal.timeout(5_000)
      })
      return { status: res.status, json: await res.json() }
    }
    assert.deepEqual(await ask('query { viewer { login } }'), { status: 200, json: { data: { viewer: { login: 'alice' } } } })
    assert.deepEqual(await ask('{ viewer { login } }', { authorization: 'bearer ghs_x' }), {
      status: 200,
      json: { data: { viewer: { login: 'someone' } } }
    })
    const other = await ask('{ repository(owner: "acme", name: "public") { id } }')
    assert.equal(other.status, 200)
    assert.match(JSON.stringify(other.json), /"errors"/)
    assert.equal((await ask('{ viewer { login } }', {})).status, 401)
  })

  it('records requests: method, path with query, authorization, If-None-Match, token, status, charged', async () => {
    await get('/repos/acme/public?x=1', { authorization: 'token alice', 'if-none-match': '"a"' })
    await get('/repos/acme/private')
    const [r1, r2] = gh.requests()
    assert.deepEqual(
      { ...r1, accept: undefined, userAgent: undefined },
      {
        method: 'GET',
        path: '/repos/acme/public?x=1',
        authorization: 'token alice',
        token: 'alice',
        ifNoneMatch: '"a"',
        status: 200,
        charged: true,
        accept: undefined,
        userAgent: undefined
      }
    )
    assert.equal(r2?.token, 'anon')
    assert.equal(r2?.status, 404)
    assert.equal(r2?.charged, true)
    assert.equal(r2?.authorization, undefined)
    assert.equal(gh.count({ token: 'alice', conditional: true }), 1)
    assert.equal(gh.count({ path: '/repos/acme/private', status: 404 }), 1)
    assert.equal(gh.count({ pathIncludes: 'acme' }), 2)
    assert.equal(gh.count({ charged: true }), 2)
    assert.equal(gh.count({ charged: false }), 0)
    gh.clearRequests()
    assert.equal(gh.count(), 0)
  })

  it('delayMs holds every answer back; requests are recorded on arrival', async () => {
    gh.setDelay(300)
    const t0 = Date.now()
    const pending = get('/repos/acme/public')
    await new Promise(resolve => setTimeout(resolve, 100))
    assert.equal(gh.count({ status: 0 }), 1, 'recorded, not answered yet')
    assert.equal(gh.requests()[0]?.charged, false)
    assert.equal((await pending).status, 200)
    assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`)
  })

  it('at 0 remaining the answer is 403 rate limit exceeded', async () => {
    const small = await startFakeGitHub({ rateLimit: 2 })
    try {
      const go = async (headers: Record<string, string> = {}): Promise<number> =>
        (await getFrom(small.url, '/repos/acme/public', headers)).status
      assert.deepEqual([await go(), await go(), await go()], [200, 200, 403])
      assert.equal(small.rateLimit('anon'), 0)
      assert.equal(small.spent('anon'), 2)
      const etag = small.etag('/repos/acme/public', 'alice') ?? ''
      assert.equal(await go(tokenAuth('alice')), 200)
      assert.equal(await go({ ...tokenAuth('alice'), 'if-none-match': etag }), 304)
      assert.equal(await go(tokenAuth('alice')), 200)
      assert.equal(await go(tokenAuth('alice')), 403)
    } finally {
      await small.stop()
    }
  })

  describe('GitHub App installation tokens', () => {
    const APP_ID = 4242
    const INSTALLATION_ID = 77
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
    })
    const other = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
    })
    const app = (extra: Partial<FakeGitHubApp> = {}): FakeGitHubApp => ({
      appId: APP_ID,
      publicKeyPem: publicKey,
      installationId: INSTALLATION_ID,
      repos: ['acme/private'],
      ...extra
    })
    let appGh: FakeGitHub | undefined
    afterEach(async () => {
      await appGh?.stop()
      appGh = undefined
    })
    const start = async (apps: FakeGitHubApp[]): Promise<FakeGitHub> => {
      appGh = await startFakeGitHub({ apps })
      return appGh
    }

    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')
    const jwt = (
      claims: Record<string, unknown>,
      key = privateKey,
      header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT' }
    ): string => {
      const data = `${b64(header)}.${b64(claims)}`
      return `${data}.${sign('sha256', Buffer.from(data), key).toString('base64url')}`
    }
    const now = (): number => Math.floor(Date.now() / 1000)
    const mint = async (
      authorization: string,
      installationId = INSTALLATION_ID,
      body?: string
    ): Promise<{ status: number, json: Record<string, unknown> }> => {
      const res = await fetch(`${appGh?.url ?? ''}/app/installations/${installationId}/access_tokens`, {
        method: 'POST',
        headers: { authorization, accept: 'application/vnd.github+json' },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(5_000)
      })
      return { status: res.status, json: await res.json() as Record<string, unknown> }
    }

    it("@octokit/auth-app mints an installation token that reads the installation's repositories; minting is free", async () => {
      const g = await start([app()])
      const auth = createAppAuth({
        appId: APP_ID,
        privateKey,
        installationId: INSTALLATION_ID,
        request: request.defaults({ baseUrl: g.url })
      })
      const t0 = Date.now()
      const result = await auth({ type: 'installation' })
      assert.equal(result.type, 'token')
      assert.equal(result.tokenType, 'installation')
      assert.match(result.token, /^ghs_[A-Za-z0-9]{36}$/)
      assert.deepEqual(result.permissions, { contents: 'read', issues: 'read', metadata: 'read', pull_requests: 'read' })
      assert.equal(result.repositorySelection, 'all')
      const expiresAt = Date.parse(result.expiresAt)
      assert.ok(expiresAt >= t0 + 3_600_000 && expiresAt <= Date.now() + 3_600_000, result.expiresAt)
      assert.deepEqual(g.mintedTokens(), [result.token])
      const [req] = g.requests({ method: 'POST' })
      assert.equal(req?.path, `/app/installations/${INSTALLATION_ID}/access_tokens`)
      assert.equal(req?.token, '(jwt)')
      assert.match(req?.authorization ?? '', /^bearer [\w-]+\.[\w-]+\.[\w-]+$/)
      assert.match(req?.accept ?? '', /^application\/vnd\.github/)
      assert.equal(req?.status, 201)
      assert.equal(req?.charged, false)
      assert.equal(g.count(), 1, 'one request: no GET /app')

      const priv = await getFrom(g.url, '/repos/acme/private', tokenAuth(result.token))
      assert.equal(priv.status, 200)
      assert.equal(priv.headers.get('etag'), etagOf(priv.text, result.token))
      assert.equal(g.spent(result.token), 1)
      // A second installation token (the next job) gets its own ETag: the first one's is a 200.
      const second = await auth({ type: 'installation', refresh: true })
      assert.notEqual(second.token, result.token)
      assert.deepEqual(g.mintedTokens(), [result.token, second.token])
      const revalidate = await getFrom(g.url, '/repos/acme/private', {
        ...tokenAuth(second.token),
        'if-none-match': priv.headers.get('etag') ?? ''
      })
      assert.equal(revalidate.status, 200)
      assert.equal(g.spent(second.token), 1)
      assert.equal(g.count({ charged: true }), 2, 'the two mints were free')
    })

    it('the JWT must be RS256, signed by the app named in iss, exp in the future (≤ 10 min), iat ≤ 60 s ahead', async () => {
      const g = await start([app(), app({ appId: 'other-app', publicKeyPem: other.publicKey, installationId: 88 })])
      const good = { iat: now() - 30, exp: now() + 570, iss: APP_ID }
      assert.equal((await mint(`Bearer ${jwt(good)}`)).status, 201)
      assert.equal((await mint(`bearer ${jwt({ ...good, iss: String(APP_ID) })}`)).status, 201, 'iss as a string')
      assert.equal((await mint(`Bearer ${jwt({ ...good, iat: now() + 50 })}`)).status, 201, 'clock skew allowed')
      assert.equal(
        (await mint(`Bearer ${jwt(good)}`, INSTALLATION_ID, '{"repositories":["private"]}')).status,
        201,
        'a JSON body is accepted'
      )
      const refused: Array<[string, string, RegExp]> = [
        ['signed with another key', `Bearer ${jwt(good, other.privateKey)}`, /could not be decoded/],
        ['unknown iss', `Bearer ${jwt({ ...good, iss: 1 })}`, /could not be decoded/],
        ['no iss', `Bearer ${jwt({ iat: good.iat, exp: good.exp })}`, /could not be decoded/],
        ['alg HS256', `Bearer ${jwt(good, privateKey, { alg: 'HS256', typ: 'JWT' })}`, /could not be decoded/],
        [
          'tampered payload',
          `Bearer ${jwt(good).replace(/^([^.]+)\.[^.]+/, (_m, h: string) => `${h}.${b64({ ...good, exp: good.exp + 1 })}`)}`,
          /could not be decoded/
        ],
        ['not a JWT', 'Bearer abc', /could not be decoded/],
        ['token scheme', `token ${jwt(good)}`, /could not be decoded/],
        ['no Authorization', '', /could not be decoded/],
        [
          'expired',
          `Bearer ${jwt({ ...good, iat: now() - 700, exp: now() - 60 })}`,
          /'Expiration time' claim \('exp'\) must be a numeric value/
        ],
        ['exp too far', `Bearer ${jwt({ ...good, exp: now() + 3600 })}`, /'Expiration time' claim \('exp'\) is too far in the future/],
        ['iat in the future', `Bearer ${jwt({ ...good, iat: now() + 120 })}`, /'Issued at' claim \('iat'\)/]
      ]
      for (const [what, authorization, message] of refused) {
        const res = await mint(authorization)
        assert.equal(res.status, 401, what)
        assert.match(String(res.json.message), message, what)
      }
      const otherJwt = jwt({ ...good, iss: 'other-app' }, other.privateKey)
      assert.equal((await mint(`Bearer ${otherJwt}`, 88)).status, 201, 'the other app, its own installation')
      const unknown = await mint(`Bearer ${otherJwt}`, INSTALLATION_ID)
      assert.equal(unknown.status, 404, "another app's installation")
      assert.equal((await mint(`Bearer ${jwt(good)}`, 999)).status, 404, 'unknown installation')
      assert.equal(g.mintedTokens().length, 5)
      assert.equal(g.count({ charged: true }), 0)
      assert.equal(g.spent('anon'), 0)
    })

    it("a minted token expires after tokenTtlMs, then gets 401 Bad credentials; the installation's repos bound what it reads", async () => {
      const g = await start([app({ tokenTtlMs: 1 }), app({ installationId: 78, repos: [] })])
      const good = `Bearer ${jwt({ iat: now() - 30, exp: now() + 570, iss: APP_ID })}`
      const t0 = Date.now()
      const shortLived = await mint(good)
      assert.equal(shortLived.status, 201)
      const expiresAt = Date.parse(String(shortLived.json.expires_at))
      assert.ok(expiresAt >= t0 + 1 && expiresAt <= Date.now() + 1, 'now + tokenTtlMs')
      const deadline = Date.now() + 5_000
      let status = 0
      while (
        Date.now() < deadline &&
        (status = (await getFrom(g.url, '/repos/acme/public', tokenAuth(String(shortLived.json.token)))).status) !== 401
      ) {
        await new Promise(resolve => setImmediate(resolve))
      }
      assert.equal(status, 401)
      const publicOnly = await mint(good, 78)
      const t = String(publicOnly.json.token)
      assert.equal((await getFrom(g.url, '/repos/acme/public', tokenAuth(t))).status, 200)
      assert.equal((await getFrom(g.url, '/repos/acme/private', tokenAuth(t))).status, 404)
    })
  })

  it('process variant: the same stand-in over IPC (addToken, spent, etag, mintedTokens, setBody)', async () => {
    const proc = await startFakeGitHubProcess({ tokens: { dave: { repos: ['acme/private'] } } })
    try {
      await proc.addToken('ghs_job', { repos: [] })
      const a = await getFrom(proc.url, '/repos/acme/private', tokenAuth('dave'))
      assert.equal(a.status, 200)
      assert.equal(a.headers.get('etag'), await proc.etag('/repos/acme/private', 'dave'))
      assert.equal(await proc.etag('/repos/acme/private'), undefined, 'anonymous: 404, no ETag')
      assert.equal(await proc.etag('/repos/acme/private', 'ghs_job'), undefined)
      assert.equal(await proc.etag('/repos/acme/public'), etagOf((await getFrom(proc.url, '/repos/acme/public')).text))
      assert.equal((await getFrom(proc.url, '/repos/acme/public', tokenAuth('ghs_job'))).status, 200)
      assert.equal((await getFrom(proc.url, '/repos/acme/public', tokenAuth('alice'))).status, 401, 'tokens option replaces the defaults')
      assert.equal(await proc.spent('dave'), 1)
      assert.equal(await proc.spent('ghs_job'), 1)
      assert.equal(await proc.rateLimit('ghs_job'), 4999)
      assert.deepEqual(await proc.mintedTokens(), [])
      assert.equal(await proc.count({ charged: true }), 3)
      assert.equal((await proc.requests({ token: 'alice' }))[0]?.charged, false)
      await proc.setBody('/users/octocat', { login: 'octocat', id: 1 })
      assert.equal((await getFrom(proc.url, '/users/octocat')).text, '{"login":"octocat","id":1}')
    } finally {
      await proc.stop()
    }
  })
})
