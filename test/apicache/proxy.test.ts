import assert from 'node:assert/strict'
import { request, type IncomingHttpHeaders } from 'node:http'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { secretLeaks } from '../fixtures/secrets.js'
import { apiStats, auth, call, ISSUES_PATH, octokitStatus, octokitVia, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'

const DEFAULT_TOKENS = { alice: { repos: ['acme/private'] }, bob: { repos: [] }, carol: { repos: ['acme/private'] } }
/** A token value distinctive enough to look for in the sidecar's files and logs. */
const SECRET = 'ghp_Z9secretTokenValue0123456789abcdefXY'

/**
 * GET through node:http with exactly `headers`: fetch does not let a caller set Host, and adds
 * Cache-Control/Pragma no-cache to conditional requests.
 */
function rawGet (url: string, headers: Record<string, string>): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false, timeout: 10_000 }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => {
        chunks.push(c)
      })
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
      })
      res.once('error', reject)
    })
    req.once('timeout', () => req.destroy(new Error('no answer')))
    req.once('error', reject)
    req.end()
  })
}

/**
 * One sidecar (P2P off) in front of the fake GitHub API (CACHE_API_UPSTREAMS=github=<fake>).
 * Every test gets a fresh fake and a fresh sidecar, so cache state and rate-limit buckets start
 * empty (5000 left for every token).
 */
describe('API cache: the GitHub API through one sidecar', function () {
  this.timeout(60_000)
  let gh: FakeGitHub
  let side: SidecarProcess

  beforeEach(async () => {
    gh = await startFakeGitHub({ tokens: { ...DEFAULT_TOKENS, [SECRET]: { repos: ['acme/private'] } } })
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}` })
  })

  afterEach(async function () {
    dumpLogsIfFailed(this, { sidecar: side })
    await stopAll([side, gh])
  })

  const api = (path: string): string => `${side.url}/github${path}`

  it('/github/<path>?<query> is proxied to <upstream>/<path>?<query>', async () => {
    const res = await call(api('/repos/acme/public?probe=path&x=%2F'))
    assert.equal(res.status, 200)
    assert.deepEqual(JSON.parse(res.text), gh.body('/repos/acme/public'))
    assert.deepEqual(gh.requests().map(r => [r.method, r.path]), [['GET', '/repos/acme/public?probe=path&x=%2F']])
    assert.equal(res.cache, 'MISS')
    assert.equal(res.source, 'github')
  })

  it('anonymous public GET: MISS, then HIT without contacting the upstream (fresh for 60 s)', async () => {
    const first = await call(api('/repos/acme/public'))
    assert.equal(first.status, 200)
    assert.equal(first.cache, 'MISS')
    assert.equal(first.source, 'github')
    const second = await call(api('/repos/acme/public'))
    assert.equal(second.status, 200)
    assert.equal(second.cache, 'HIT')
    assert.equal(second.source, 'local')
    assert.equal(second.text, first.text)
    assert.equal(second.headers.get('etag'), first.headers.get('etag'))
    assert.equal(gh.count({ path: '/repos/acme/public' }), 1, 'one upstream request')
    assert.equal(gh.rateLimit('anon'), 4999)
  })

  it('authenticated GET (Octokit): MISS, then REVALIDATED with If-None-Match; only the first costs rate limit', async () => {
    const octokit = octokitVia(side.url, 'alice')
    const first = await octokit.repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(first.status, 200)
    assert.equal(first.data.full_name, 'acme/private')
    assert.equal(first.headers['x-cache'], 'MISS')
    const etag = gh.etag('/repos/acme/private', 'alice')
    for (let i = 0; i < 2; i++) {
      const again = await octokit.repos.get({ owner: 'acme', repo: 'private' })
      assert.equal(again.status, 200, 'the client asked unconditionally: it gets 200 and the body')
      assert.deepEqual(again.data, first.data)
      assert.equal(again.headers['x-cache'], 'REVALIDATED')
    }
    const seen = gh.requests({ path: '/repos/acme/private' })
    assert.deepEqual(seen.map(r => [r.token, r.ifNoneMatch, r.status]), [
      ['alice', undefined, 200],
      ['alice', etag, 304],
      ['alice', etag, 304]
    ])
    assert.equal(gh.rateLimit('alice'), 4999, 'the two revalidations were free')
    const stats = await apiStats(side.url)
    assert.equal(stats.revalidations_304, 2)
    const github = (stats.api_ratelimit_remaining as Record<string, Record<string, number>>).github ?? {}
    assert.deepEqual(Object.values(github), [4999])
    assert.match(Object.keys(github)[0] ?? '', /^[0-9a-f]{12}$/, 'labelled by a hash prefix, not the token')
  })

  it("another token with access is revalidated with its own credentials and If-Modified-Since, never alice's ETag (0 rate limit spent)", async () => {
    const alice = await octokitVia(side.url, 'alice').repos.get({ owner: 'acme', repo: 'private' })
    const carol = await octokitVia(side.url, 'carol').repos.get({ owner: 'acme', repo: 'private' })
    assert.deepEqual(carol.data, alice.data)
    assert.equal(carol.headers['x-cache'], 'REVALIDATED')
    assert.deepEqual(gh.requests({ token: 'carol' }).map(r => [r.authorization, r.ifNoneMatch, r.ifModifiedSince, r.status]), [
      ['token carol', undefined, alice.headers['last-modified'], 304]
    ])
    assert.equal(gh.rateLimit('carol'), 5000)
  })

  it("a list (no Last-Modified) for another token is a full GET with that token: another token's ETag is never sent", async () => {
    const path = `${ISSUES_PATH}?page=1&per_page=2`
    await octokitVia(side.url, 'alice').request(`GET ${path}`)
    const carol = await octokitVia(side.url, 'carol').request(`GET ${path}`)
    assert.equal(carol.headers['x-cache'], 'MISS')
    assert.deepEqual(gh.requests({ token: 'carol' }).map(r => [r.ifNoneMatch, r.ifModifiedSince, r.status]), [[undefined, undefined, 200]])
    assert.equal(gh.spent('carol'), 1, 'what GitHub charges without a fleet credential')
  })

  it('the client\'s own If-None-Match is compared weakly (RFC 9110 13.1.2): "x" matches a stored W/"x"', async () => {
    const first = await call(api('/repos/acme/public'))
    const etag = first.headers.get('etag') ?? ''
    assert.match(etag, /^W\//)
    const strong = etag.replace(/^W\//, '')
    const again = await rawGet(api('/repos/acme/public'), { 'if-none-match': `"other", ${strong}` })
    assert.equal(again.status, 304, JSON.stringify(again.headers))
    assert.equal(again.headers['x-cache'], 'HIT')
  })

  it("a request's own Cache-Control: no-cache is not answered from memory: it goes upstream (RFC 9111 5.2.1.4)", async () => {
    await call(api('/repos/acme/public'))
    assert.equal((await rawGet(api('/repos/acme/public'), {})).headers['x-cache'], 'HIT')
    const before = gh.count({ path: '/repos/acme/public' })
    const fresh = await rawGet(api('/repos/acme/public'), { 'cache-control': 'no-cache' })
    assert.equal(fresh.status, 200)
    assert.notEqual(fresh.headers['x-cache'], 'HIT')
    assert.equal(gh.count({ path: '/repos/acme/public' }), before + 1)
  })

  it('a HIT does not repeat the stored X-RateLimit-* headers', async () => {
    const first = await call(api('/repos/acme/public'))
    assert.notEqual(first.headers.get('x-ratelimit-remaining'), null)
    const hit = await call(api('/repos/acme/public'))
    assert.equal(hit.cache, 'HIT')
    assert.equal(hit.headers.get('x-ratelimit-remaining'), null)
  })

  it('a token without access gets the upstream 404, never the cached body', async () => {
    const alice = await octokitVia(side.url, 'alice').repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(alice.status, 200)
    assert.equal(await octokitStatus(octokitVia(side.url, 'bob').repos.get({ owner: 'acme', repo: 'private' })), 404)
    assert.deepEqual(gh.requests({ token: 'bob' }).map(r => [r.path, r.status]), [['/repos/acme/private', 404]])

    // Not even when bob sends alice's ETag: the sidecar must not answer 304 from its cache.
    const withEtag = await call(api('/repos/acme/private'), {
      headers: { ...auth('bob'), 'if-none-match': gh.etag('/repos/acme/private', 'alice') ?? '' }
    })
    assert.equal(withEtag.status, 404)
    assert.equal(JSON.parse(withEtag.text).message, 'Not Found')
    assert.equal(gh.count({ token: 'bob' }), 2)

    const anon = await call(api('/repos/acme/private'))
    assert.equal(anon.status, 404)
    assert.doesNotMatch(anon.text, /acme\/private/)
    assert.equal(gh.count({ token: 'anon', path: '/repos/acme/private' }), 1)
  })

  it('an unknown token gets the upstream 401', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await call(api('/repos/acme/public'), { headers: auth('mallory') })
      assert.equal(res.status, 401)
      assert.equal(JSON.parse(res.text).message, 'Bad credentials')
    }
    assert.equal(gh.count({ token: 'mallory' }), 2)
  })

  it('authenticated: changed content upstream is seen at once (200 to the conditional request)', async () => {
    const octokit = octokitVia(side.url, 'alice')
    await octokit.repos.get({ owner: 'acme', repo: 'private' })
    gh.setBody('/repos/acme/private', { full_name: 'acme/private', description: 'renamed' })
    const after = await octokit.repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(after.data.description, 'renamed')
    assert.notEqual(after.headers['x-cache'], 'REVALIDATED')
    assert.notEqual(after.headers['x-cache'], 'HIT')
    const again = await octokit.repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(again.data.description, 'renamed')
    assert.equal(again.headers['x-cache'], 'REVALIDATED', 'the new version was stored')
  })

  for (const who of ['anonymous', 'alice'] as const) {
    it(`no-store responses are never stored (${who}): MISS twice, two upstream requests`, async () => {
      const headers = who === 'anonymous' ? {} : auth(who)
      const first = await call(api('/nostore'), { headers })
      const second = await call(api('/nostore'), { headers })
      assert.equal(first.status, 200)
      assert.equal(second.status, 200)
      assert.equal(first.cache, 'MISS')
      assert.equal(second.cache, 'MISS')
      assert.notEqual(second.text, first.text, "the second body is the upstream's new one")
      assert.equal(gh.count({ path: '/nostore' }), 2)
      assert.equal(gh.count({ path: '/nostore', conditional: true }), 0, 'nothing stored to revalidate')
    })
  }

  it('POST and PATCH (Octokit) pass through unchanged: body echoed, X-Cache PASS, each one reaches the upstream', async () => {
    const octokit = octokitVia(side.url, 'alice')
    for (let i = 0; i < 2; i++) {
      const created = await octokit.issues.create({
        owner: 'acme',
        repo: 'public',
        title: 'flaky test',
        body: 'seen twice',
        labels: ['ci']
      })
      assert.equal(created.status, 201)
      assert.deepEqual(created.data as unknown, { title: 'flaky test', body: 'seen twice', labels: ['ci'] })
      assert.equal(created.headers['x-cache'], 'PASS')
    }
    const posts = gh.requests({ method: 'POST' })
    assert.equal(posts.length, 2)
    for (const p of posts) {
      assert.equal(p.path, ISSUES_PATH)
      assert.equal(p.authorization, 'token alice')
      assert.deepEqual(JSON.parse(p.body ?? ''), { title: 'flaky test', body: 'seen twice', labels: ['ci'] })
    }

    const updated = await octokit.issues.update({ owner: 'acme', repo: 'public', issue_number: 3, state: 'closed' })
    assert.equal(updated.status, 200)
    assert.deepEqual(updated.data as unknown, { state: 'closed' })
    assert.equal(updated.headers['x-cache'], 'PASS')
    const raw = await call(api(ISSUES_PATH), {
      method: 'PATCH',
      headers: { ...auth('alice'), 'content-type': 'application/json' },
      body: '{"x":1}'
    })
    assert.equal(raw.status, 200)
    assert.equal(raw.text, '{"x":1}')
    assert.equal(raw.cache, 'PASS')
    assert.equal(gh.count({ method: 'PATCH' }), 2)

    // A GET of the same URL is the issue list, not an echo of a POST.
    const list = await octokit.issues.listForRepo({ owner: 'acme', repo: 'public' })
    assert.deepEqual(list.data.map(i => i.number), [6, 5, 4, 3, 2, 1])
  })

  it('Link headers pointing at the upstream are rewritten to point through the sidecar (MISS and HIT)', async () => {
    const expected =
      `<${side.url}/github${ISSUES_PATH}?page=2&per_page=2>; rel="next", <${side.url}/github${ISSUES_PATH}?page=3&per_page=2>; rel="last"`
    const first = await call(api(`${ISSUES_PATH}?page=1&per_page=2`))
    assert.equal(first.cache, 'MISS')
    assert.equal(first.headers.get('link'), expected)
    const second = await call(api(`${ISSUES_PATH}?page=1&per_page=2`))
    assert.equal(second.cache, 'HIT')
    assert.equal(second.headers.get('link'), expected)
    const revalidated = [
      await call(api(`${ISSUES_PATH}?page=2&per_page=2`), { headers: auth('alice') }),
      await call(api(`${ISSUES_PATH}?page=2&per_page=2`), { headers: auth('alice') })
    ]
    assert.equal(revalidated[1]?.cache, 'REVALIDATED')
    for (const r of revalidated) {
      const link = r.headers.get('link') ?? ''
      assert.ok(!link.includes(gh.url), `no upstream URL left: ${link}`)
      assert.match(link, new RegExp(`^<${side.url}/github${ISSUES_PATH}\\?page=1&per_page=2>; rel="prev"`))
    }
  })

  it('octokit.paginate follows the rewritten Links through the sidecar; a second run is all REVALIDATED', async () => {
    const urls: string[] = []
    const octokit = octokitVia(side.url, 'alice', urls)
    const issues = await octokit.paginate(octokit.issues.listForRepo, { owner: 'acme', repo: 'public', per_page: 2 })
    assert.deepEqual(issues.map(i => i.number), [6, 5, 4, 3, 2, 1])
    assert.equal(urls.length, 3)
    for (const u of urls) assert.ok(u.startsWith(`${side.url}/github/`), `Octokit fetched ${u}, not through the sidecar`)
    assert.equal(gh.count({ pathIncludes: ISSUES_PATH, token: 'alice' }), 3)
    assert.equal(gh.rateLimit('alice'), 4997)

    const kinds: string[] = []
    const again = await octokit.paginate(octokit.issues.listForRepo, { owner: 'acme', repo: 'public', per_page: 2 }, res => {
      kinds.push(String(res.headers['x-cache']))
      return res.data
    })
    assert.deepEqual(again.map(i => i.number), [6, 5, 4, 3, 2, 1])
    assert.deepEqual(kinds, ['REVALIDATED', 'REVALIDATED', 'REVALIDATED'])
    assert.equal(gh.rateLimit('alice'), 4997, 'the second run cost nothing')
    assert.equal(urls.length, 6)
    for (const u of urls) assert.ok(u.startsWith(`${side.url}/github/`), `Octokit fetched ${u}, not through the sidecar`)
  })

  it('stats: revalidations_304 and api_ratelimit_remaining = { github: { <credential label>: last X-RateLimit-Remaining seen } }', async () => {
    const before = await apiStats(side.url)
    assert.equal(typeof before.revalidations_304, 'number')
    await call(api('/repos/acme/public'))
    assert.deepEqual((await apiStats(side.url)).api_ratelimit_remaining, { github: { anon: 4999 } })
    await call(api('/repos/acme/private'), { headers: auth('alice') })
    await call(api('/repos/acme/private'), { headers: auth('alice') })
    const stats = await apiStats(side.url)
    const github = (stats.api_ratelimit_remaining as Record<string, Record<string, number>>).github ?? {}
    assert.equal(github.anon, 4999, 'anonymous and alice are not mixed')
    assert.deepEqual(Object.entries(github).filter(([k]) => k !== 'anon').map(([, n]) => n), [gh.rateLimit('alice')])
    assert.equal(stats.revalidations_304, (before.revalidations_304 as number) + 1)
  })

  it('an authenticated request is not served the anonymous HIT: it is revalidated with its own token', async () => {
    assert.equal((await call(api('/repos/acme/public'))).cache, 'MISS')
    const alice = await octokitVia(side.url, 'alice').repos.get({ owner: 'acme', repo: 'public' })
    assert.equal(alice.status, 200)
    assert.notEqual(alice.headers['x-cache'], 'HIT')
    assert.equal(gh.count({ token: 'alice', path: '/repos/acme/public' }), 1, "alice's own request reached the upstream")
  })

  it("an anonymous request is not served a HIT from alice's private response", async () => {
    await call(api('/repos/acme/public'), { headers: auth('alice') })
    const anon = await call(api('/repos/acme/public'))
    assert.equal(anon.status, 200)
    assert.notEqual(anon.cache, 'HIT')
    assert.equal(gh.count({ token: 'anon', path: '/repos/acme/public' }), 1)
  })

  it('Vary: Accept: a request with another Accept is not a HIT of the stored one', async () => {
    const json = await call(api('/repos/acme/public'), { headers: { accept: 'application/vnd.github+json' } })
    assert.equal(json.cache, 'MISS')
    assert.equal((await call(api('/repos/acme/public'), { headers: { accept: 'application/vnd.github+json' } })).cache, 'HIT')
    const raw = await call(api('/repos/acme/public'), { headers: { accept: 'application/vnd.github.raw+json' } })
    assert.equal(raw.status, 200)
    assert.notEqual(raw.cache, 'HIT')
    assert.equal(gh.count({ path: '/repos/acme/public' }), 2)
  })

  it('a REVALIDATED answer carries the X-RateLimit-* headers of the 304, not the stored ones (RFC 9111 4.3.4)', async () => {
    const first = await call(api('/repos/acme/private'), { headers: auth('alice') })
    assert.equal(first.headers.get('x-ratelimit-remaining'), '4999')
    await call(api('/repos/acme/public'), { headers: auth('alice') })
    const again = await call(api('/repos/acme/private'), { headers: auth('alice') })
    assert.equal(again.cache, 'REVALIDATED')
    assert.equal(again.headers.get('x-ratelimit-remaining'), '4998', 'what the upstream said in the 304')
    assert.equal(again.headers.get('x-ratelimit-used'), '2')
  })

  it('the Link rewrite uses the Host the client called the sidecar by', async () => {
    const res = await rawGet(api(`${ISSUES_PATH}?page=1&per_page=2`), { host: 'runner-cache:9080' })
    assert.equal(res.status, 200)
    assert.equal(String(res.headers.link).split(', ')[0], `<http://runner-cache:9080/github${ISSUES_PATH}?page=2&per_page=2>; rel="next"`)
  })

  it('the credential itself is in no file of the cache dir and in no log line', async () => {
    const octokit = octokitVia(side.url, SECRET)
    await octokit.repos.get({ owner: 'acme', repo: 'private' })
    await octokit.repos.get({ owner: 'acme', repo: 'private' })
    await octokit.paginate(octokit.issues.listForRepo, { owner: 'acme', repo: 'public', per_page: 2 })
    assert.equal(gh.count({ token: SECRET }), 5)
    await side.stop() // flushes the index to disk
    assert.deepEqual(await secretLeaks(SECRET, side.env.CACHE_DIR ?? '', side.logs()), { files: [], lines: [] })
  })

  it("a fresh anonymous entry answers the client's own conditional GET itself: 304, HIT, no upstream request", async () => {
    const first = await call(api('/repos/acme/public'))
    assert.equal(first.cache, 'MISS')
    const etag = first.headers.get('etag') ?? ''
    // node:http, not fetch: fetch adds Cache-Control: no-cache (and Pragma) to conditional
    // requests, which rightly forces a revalidation.
    // Same Accept as fetch sent (the response varies on it).
    const cond = await rawGet(api('/repos/acme/public'), { accept: '*/*', 'if-none-match': etag })
    assert.equal(cond.status, 304)
    assert.equal(cond.body, '')
    assert.equal(cond.headers.etag, etag)
    assert.equal(
      cond.headers['x-cache'],
      'HIT',
      `X-Cache ${String(cond.headers['x-cache'])}; upstream saw ${
        JSON.stringify(gh.requests().map(r => [r.path, r.ifNoneMatch, r.status]))
      }`
    )
    assert.equal(gh.count({ path: '/repos/acme/public' }), 1, 'fresh for 60 s: no upstream request')
  })
})
