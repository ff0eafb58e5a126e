import assert from 'node:assert/strict'
import { request, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHttpServer } from '../../../src/http/server.js'
import { ApiRoutes } from '../../../src/apicache/routes.js'
import { silentLog } from '../fakes/log.js'
import { apiHarness, type ApiHarness } from './harness.js'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One request on its own connection (no keep-alive socket is left behind). */
async function call (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** ApiRoutes over `client` and the harness's resolver, on an HTTP server on 127.0.0.1. */
async function serve (
  h: ApiHarness,
  client: ConstructorParameters<typeof ApiRoutes>[0]['client']
): Promise<{ server: Server, port: number }> {
  const routes = new ApiRoutes({ client, resolver: h.resolver, stats: h.stats, log: silentLog() })
  const server = createHttpServer([routes], silentLog(), {
    headerTimeoutMs: 5000,
    idleTimeoutMs: 1000,
    stallTimeoutMs: 5000,
    maxConnections: 64
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

describe('ApiRoutes: /<upstream>/<path> through the API cache, over HTTP', () => {
  let h: ApiHarness
  let server: Server
  let port: number

  beforeEach(async () => {
    h = await apiHarness()
    h.fake.token('alice').repo('octo/hello')
      .resource('/repos/octo/hello/issues', {
        body: '[{"number":1}]',
        headers: {
          link:
            '<https://api.github.com/repos/octo/hello/issues?page=2>; rel="next", <https://api.github.com/repos/octo/hello/issues?page=5>; rel="last"'
        }
      })
      .resource('/repos/octo/hello/moved', { body: '', status: 301, headers: { location: 'https://api.github.com/repositories/42' } })
    ;({ server, port } = await serve(h, h.fake))
  })

  afterEach(async () => {
    await new Promise(resolve => server.close(resolve))
    await h.close()
  })

  it('a GET is a MISS from the upstream, then a HIT served locally', async () => {
    const first = await call(port, 'GET', '/github/repos/octo/hello/issues')
    assert.equal(first.status, 200)
    assert.equal(first.headers['x-cache'], 'MISS')
    assert.equal(first.headers['x-cache-source'], 'github')
    assert.equal(first.body, '[{"number":1}]')
    assert.equal(first.headers['x-cache-date'], undefined, 'a MISS serves no stored copy')
    const storedAt = h.clock.now()
    h.clock.advance(2_000)
    const second = await call(port, 'GET', '/github/repos/octo/hello/issues')
    assert.equal(second.headers['x-cache'], 'HIT')
    assert.equal(second.headers['x-cache-source'], 'local')
    assert.equal(second.headers['x-cache-date'], new Date(storedAt).toUTCString(), 'when the response was stored, not when served')
    assert.equal(second.headers['content-length'], String(Buffer.byteLength(second.body)))
    assert.equal(h.fake.count(), 1)
    assert.equal(h.stats.snapshot().hits, 1)
  })

  it('pagination Link URLs point back at the sidecar as the client called it', async () => {
    const reply = await call(port, 'GET', '/github/repos/octo/hello/issues')
    const link = String(reply.headers.link ?? '')
    assert.ok(!link.includes('api.github.com'), link)
    assert.ok(link.includes(`<http://127.0.0.1:${port}/github/repos/octo/hello/issues?page=2>; rel="next"`), link)
  })

  it('a redirect Location is rewritten to the sidecar', async () => {
    const reply = await call(port, 'GET', '/github/repos/octo/hello/moved')
    assert.equal(reply.status, 301)
    assert.equal(reply.headers.location, `http://127.0.0.1:${port}/github/repositories/42`)
  })

  it('the GitHub Enterprise layout (/api/v3/...) reaches the `github` upstream, and its links stay in that layout', async () => {
    const reply = await call(port, 'GET', '/api/v3/repos/octo/hello/issues')
    assert.equal(reply.status, 200)
    assert.equal(h.fake.log.at(-1)?.path, '/repos/octo/hello/issues')
    assert.ok(String(reply.headers.link ?? '').includes(`<http://127.0.0.1:${port}/api/v3/repos/octo/hello/issues?page=2>`))
  })

  it('paths that are not an API upstream (registry, admin, other /api/...) are left to other routes: 404 here', async () => {
    for (const path of ['/v2/', '/metrics', '/healthz', '/api/other', '/nope/repos/x/y']) {
      const reply = await call(port, 'GET', path)
      assert.equal(reply.status, 404, path)
      assert.match(reply.body, /no such endpoint/)
    }
    assert.equal(h.fake.count(), 0)
  })

  it("a client's matching If-None-Match gets a 304 without a body", async () => {
    const first = await call(port, 'GET', '/github/repos/octo/hello/issues')
    const etag = first.headers.etag ?? ''
    const again = await call(port, 'GET', '/github/repos/octo/hello/issues', { 'if-none-match': etag })
    assert.equal(again.status, 304)
    assert.equal(again.body, '')
    assert.equal(h.fake.log.filter(r => r.conditional).length, 0, "the client's validator is not forwarded upstream")
  })

  it("HEAD answers the headers with the body's length and no body", async () => {
    const reply = await call(port, 'HEAD', '/github/repos/octo/hello/issues')
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['content-length'], '14')
    assert.equal(reply.body, '')
  })

  it('other methods pass through untouched and uncached (x-cache: PASS), their Location rewritten', async () => {
    const reply = await call(port, 'POST', '/github/repos/octo/hello/issues', {
      'content-type': 'application/json',
      authorization: 'Bearer alice'
    }, '{"title":"new"}')
    assert.equal(reply.status, 201)
    assert.equal(reply.headers['x-cache'], 'PASS')
    assert.equal((JSON.parse(reply.body) as { received: string }).received, '{"title":"new"}')
    assert.equal(reply.headers.location, `http://127.0.0.1:${port}/github/repos/octo/hello/issues/1`)
    assert.equal(h.fake.log.at(-1)?.headers.authorization, 'Bearer alice')
    assert.deepEqual(await h.records.all('github /repos/octo/hello/issues'), [])
  })

  it('an unreachable upstream is a 502 whose message names the upstream and the failure', async () => {
    h.fake.throwNext(new Error('connect ECONNREFUSED'))
    const reply = await call(port, 'GET', '/github/repos/octo/hello/issues')
    assert.equal(reply.status, 502)
    assert.match(reply.body, /upstream github failed: connect ECONNREFUSED/)
    assert.equal(h.stats.snapshot().errors, 1)
  })
})

describe('ApiRoutes: a body over maxBody, streamed through (a real ApiClient)', () => {
  const BIG = '/repos/octo/hello/big'
  const BIG_BODY = JSON.stringify({ items: 'y'.repeat(50_000) })
  let h: ApiHarness
  let server: Server
  let port: number

  beforeEach(async () => {
    h = await apiHarness({ maxBody: 1024, overHttp: true })
    h.fake.repo('octo/hello').resource(BIG, { body: BIG_BODY })
    ;({ server, port } = await serve(h, h.client))
  })

  afterEach(async () => {
    await new Promise(resolve => server.close(resolve))
    await h.close()
  })

  it('a GET gets the whole body with its Content-Length (MISS); bytes_served counts it', async () => {
    const reply = await call(port, 'GET', `/github${BIG}`)
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['x-cache'], 'MISS')
    assert.equal(reply.headers['content-length'], String(BIG_BODY.length))
    assert.equal(reply.body, BIG_BODY)
    assert.equal(h.stats.snapshot().bytes_served, BIG_BODY.length)
  })

  it("HEAD answers the headers with the body's length and no body", async () => {
    const reply = await call(port, 'HEAD', `/github${BIG}`)
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['content-length'], String(BIG_BODY.length))
    assert.equal(reply.body, '')
  })

  it("a client's matching If-None-Match gets a 304 without a body", async () => {
    const first = await call(port, 'GET', `/github${BIG}`)
    const again = await call(port, 'GET', `/github${BIG}`, { 'if-none-match': first.headers.etag ?? '' })
    assert.equal(again.status, 304)
    assert.equal(again.body, '')
  })
})
