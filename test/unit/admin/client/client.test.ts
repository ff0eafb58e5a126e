import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { SidecarClient } from '../../../../src/admin/client/client.js'
import { MAX_ANSWER_BYTES } from '../../../../src/admin/client/constants.js'
import { SidecarBadAnswerError, SidecarStatusError, SidecarUnreachableError } from '../../../../src/admin/client/errors.js'
import { closeServer, listenLocal } from '../../http/local.js'

/** What the stand-in sidecar received. */
interface Seen {
  method: string
  url: string
  authorization: string | undefined
}

const DIGEST = `sha256:${'ab'.repeat(32)}`

describe('SidecarClient: one client of a running sidecar', () => {
  let server: Server
  let base: string
  let seen: Seen[]
  let handle: (req: IncomingMessage, res: ServerResponse) => void

  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  }

  before(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization })
      handle(req, res)
    })
    base = `http://127.0.0.1:${await listenLocal(server)}`
  })

  beforeEach(() => {
    seen = []
  })

  after(async () => {
    await closeServer(server)
  })

  describe('typed endpoints', () => {
    it('stats(): the JSON of GET /api/cache/stats', async () => {
      handle = (_req, res) => {
        json(res, 200, { stores: 5, hit_rate: 0.5 })
      }
      const stats = await new SidecarClient(base).stats()
      assert.equal(stats.stores, 5)
      assert.deepEqual(seen.map(s => `${s.method} ${s.url}`), ['GET /api/cache/stats'])
    })

    it('health() and ready(): the status of any answer, and the Date header', async () => {
      handle = (req, res) => {
        json(res, req.url === '/readyz' ? 503 : 200, { status: 'x' })
      }
      const client = new SidecarClient(base)
      const health = await client.health()
      assert.equal(health.status, 200)
      assert.ok(health.date !== undefined && !Number.isNaN(Date.parse(health.date)))
      assert.equal((await client.ready()).status, 503)
    })

    it('p2pInfo() and caCertificate(): undefined when the sidecar has that part off (404)', async () => {
      handle = (_req, res) => {
        json(res, 404, { error: 'off' })
      }
      const client = new SidecarClient(base)
      assert.equal(await client.p2pInfo(), undefined)
      assert.equal(await client.caCertificate(), undefined)
      handle = (req, res) => {
        if (req.url === '/ca.crt') res.writeHead(200).end('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
        else json(res, 200, { peerId: '12D3KooWself', addrs: [], peers: [] })
      }
      assert.equal((await client.p2pInfo())?.peerId, '12D3KooWself')
      assert.match(await client.caCertificate() ?? '', /^-----BEGIN CERTIFICATE-----/)
    })

    it('caCertificate(): a 200 that holds no certificate is a bad answer, not a CA', async () => {
      handle = (_req, res) => {
        res.writeHead(200).end('<html>a login page</html>')
      }
      await assert.rejects(
        new SidecarClient(base).caCertificate(),
        (err: unknown) => err instanceof SidecarBadAnswerError && err.message === 'GET /ca.crt: the answer is not a PEM certificate'
      )
    })

    it('json(): an answer that is not JSON is a bad answer naming the request', async () => {
      handle = (_req, res) => {
        res.writeHead(200).end('not json')
      }
      await assert.rejects(
        new SidecarClient(base).json('/api/cache/clients'),
        (err: unknown) => err instanceof SidecarBadAnswerError && err.message.startsWith('GET /api/cache/clients: the answer is not JSON (')
      )
    })
  })

  describe('the admin API', () => {
    it('gc(): POST /api/cache/gc with the admin token as a Bearer token; the removal in numbers', async () => {
      handle = (_req, res) => {
        json(res, 200, { removed: 3, current_size: 1024 })
      }
      assert.deepEqual(await new SidecarClient(base, { adminToken: 's3cret' }).gc(), { removed: 3, currentSize: 1024 })
      assert.deepEqual(seen, [{ method: 'POST', url: '/api/cache/gc', authorization: 'Bearer s3cret' }])
    })

    it('clear(), pin() and unpin(): their methods and paths, the digest encoded, with the token', async () => {
      handle = (_req, res) => {
        json(res, 200, { removed: 0, current_size: 0 })
      }
      const client = new SidecarClient(base, { adminToken: 't' })
      await client.clear()
      await client.pin(DIGEST)
      await client.unpin(DIGEST)
      assert.deepEqual(seen.map(s => `${s.method} ${s.url} ${s.authorization ?? '-'}`), [
        'DELETE /api/cache Bearer t',
        `PUT /api/cache/pins/sha256%3A${'ab'.repeat(32)} Bearer t`,
        `DELETE /api/cache/pins/sha256%3A${'ab'.repeat(32)} Bearer t`
      ])
    })

    it('the token goes to the admin API only, and no header is sent without one', async () => {
      handle = (_req, res) => {
        json(res, 200, { removed: 0, current_size: 0 })
      }
      await new SidecarClient(base, { adminToken: 't' }).health()
      await new SidecarClient(base, { adminToken: 't' }).json('/api/p2p')
      await new SidecarClient(base).gc()
      await new SidecarClient(base, { adminToken: '' }).gc()
      assert.deepEqual(seen.map(s => s.authorization), [undefined, undefined, undefined, undefined])
    })

    it("a refusal is a SidecarStatusError with the status and the sidecar's own message", async () => {
      handle = (_req, res) => {
        json(res, 403, { error: 'admin calls are allowed from loopback, or with Authorization: Bearer <CACHE_ADMIN_TOKEN>' })
      }
      await assert.rejects(
        new SidecarClient(base).gc(),
        (err: unknown) =>
          err instanceof SidecarStatusError && err.status === 403 && err.request === 'POST /api/cache/gc' &&
          err.detail === 'admin calls are allowed from loopback, or with Authorization: Bearer <CACHE_ADMIN_TOKEN>' &&
          err.message === `POST /api/cache/gc answered 403: ${err.detail}`
      )
    })
  })

  describe('non-2xx answers', () => {
    it("the detail is the JSON error, the registry's first error message, or the start of the text; none for an empty body", async () => {
      const client = new SidecarClient(base)
      const detail = async (): Promise<string | undefined> =>
        await client.json('/x').then(() => 'no error', (err: unknown) => (err as SidecarStatusError).detail)
      handle = (_req, res) => {
        json(res, 500, { errors: [{ code: 'UNKNOWN', message: 'boom' }] })
      }
      assert.equal(await detail(), 'boom')
      handle = (_req, res) => {
        res.writeHead(502).end(`  Bad Gateway ${'x'.repeat(400)}`)
      }
      assert.equal(await detail(), `Bad Gateway ${'x'.repeat(400)}`.slice(0, 300))
      handle = (_req, res) => {
        res.writeHead(500).end()
      }
      assert.equal(await detail(), undefined)
    })

    it('an error answer larger than the bound still says its status', async () => {
      handle = (_req, res) => {
        res.writeHead(500)
        res.end(Buffer.alloc(MAX_ANSWER_BYTES + 1, 'x'))
      }
      await assert.rejects(
        new SidecarClient(base).json('/x'),
        (err: unknown) => err instanceof SidecarStatusError && err.status === 500 && err.detail === undefined
      )
    })
  })

  describe('bounded answers', () => {
    it('a body over MAX_ANSWER_BYTES, sent chunked, fails as too large', async () => {
      handle = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        // 64 KiB chunks up to just past the bound: no Content-Length, so it is counted as it comes.
        const chunk = Buffer.alloc(64 * 1024, ' ')
        for (let sent = 0; sent <= MAX_ANSWER_BYTES; sent += chunk.byteLength) res.write(chunk)
        res.end('{}')
      }
      await assert.rejects(
        new SidecarClient(base).stats(),
        (err: unknown) =>
          err instanceof SidecarBadAnswerError &&
          err.message === `GET /api/cache/stats: the answer is larger than ${MAX_ANSWER_BYTES} bytes`
      )
    })

    it('a declared Content-Length over the bound fails at once, before the body comes', async () => {
      // The body never comes: only the declared length can end this request before the budget.
      handle = (_req, res) => {
        res.writeHead(200, { 'content-length': String(MAX_ANSWER_BYTES + 1) }).flushHeaders()
      }
      const started = performance.now()
      await assert.rejects(new SidecarClient(base, { timeoutMs: 10_000 }).text('/ca.crt'), SidecarBadAnswerError)
      assert.ok(performance.now() - started < 5_000, 'did not wait for the body')
    })

    it('an answer at the bound is read whole', async () => {
      handle = (_req, res) => {
        res.writeHead(200).end(Buffer.alloc(MAX_ANSWER_BYTES, 'y'))
      }
      assert.equal((await new SidecarClient(base).text('/x')).length, MAX_ANSWER_BYTES)
    })
  })

  describe('no answer', () => {
    it('a port nothing listens on: SidecarUnreachableError with ECONNREFUSED and the message the commands print', async () => {
      const closed = createServer()
      const port = await listenLocal(closed)
      await closeServer(closed)
      const url = `http://127.0.0.1:${port}`
      await assert.rejects(new SidecarClient(url).stats(), (err: unknown) => {
        assert.ok(err instanceof SidecarUnreachableError)
        assert.equal(err.url, url)
        assert.equal(err.code, 'ECONNREFUSED')
        assert.equal(err.timedOut, false)
        assert.match(
          err.message,
          /^cannot reach a sidecar at http:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED.*\); is `p2p-cache serve` running\? Pass --url or set CACHE_HTTP_ADDR$/
        )
        return true
      })
    })

    it('a URL that is not one: SidecarUnreachableError saying so', async () => {
      await assert.rejects(
        new SidecarClient('not a url').health(),
        (err: unknown) =>
          err instanceof SidecarUnreachableError && err.message.startsWith('cannot reach a sidecar at not a url (Invalid URL)')
      )
    })

    it('no answer within the budget: SidecarUnreachableError, timedOut', async () => {
      handle = () => {/* never answers */}
      const started = performance.now()
      await assert.rejects(
        new SidecarClient(base, { timeoutMs: 200 }).stats(),
        (err: unknown) =>
          err instanceof SidecarUnreachableError && err.timedOut && /\(The operation was aborted due to timeout\)/.test(err.message)
      )
      assert.ok(performance.now() - started < 2_000)
    })

    it('the budget covers the body: one that stalls after the headers times out too', async () => {
      handle = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"stores":')
      }
      await assert.rejects(
        new SidecarClient(base, { timeoutMs: 200 }).stats(),
        (err: unknown) => err instanceof SidecarUnreachableError && err.timedOut
      )
    })

    it("a request's own budget replaces the client's", async () => {
      handle = () => {/* never answers */}
      const started = performance.now()
      await assert.rejects(
        new SidecarClient(base, { timeoutMs: 60_000 }).probe('/v2/', { timeoutMs: 150 }),
        (err: unknown) => err instanceof SidecarUnreachableError && err.timedOut
      )
      assert.ok(performance.now() - started < 2_000)
    })

    it("the caller's abort is its own reason, not the sidecar's failure", async () => {
      handle = () => {/* never answers */}
      const controller = new AbortController()
      const reason = new Error('job cancelled')
      setTimeout(() => {
        controller.abort(reason)
      }, 50)
      await assert.rejects(new SidecarClient(base).stats({ signal: controller.signal }), (err: unknown) => err === reason)
    })
  })

  describe('stream(): bodies that are not held in memory', () => {
    it('hands back status, headers and the body unread, with the query set on the URL', async () => {
      handle = (_req, res) => {
        res.writeHead(200, { 'x-cache': 'HIT' }).end(Buffer.alloc(3 * MAX_ANSWER_BYTES, 1))
      }
      const res = await new SidecarClient(base).stream('/v2/team/app/blobs/x', { headers: { accept: '*/*' }, query: { ns: 'ghcr.io' } })
      assert.equal(res.status, 200)
      assert.equal(res.header('x-cache'), 'HIT')
      let bytes = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) bytes += chunk.byteLength
      assert.equal(bytes, 3 * MAX_ANSWER_BYTES, 'no bound on a streamed body')
      assert.equal(seen[0]?.url, '/v2/team/app/blobs/x?ns=ghcr.io')
    })

    it('hands back an error status as is, for the caller to read', async () => {
      handle = (_req, res) => {
        json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] })
      }
      const res = await new SidecarClient(base).stream('/v2/x/manifests/y')
      assert.equal(res.status, 404)
      res.body.resume()
    })
  })
})
