import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { RegistryClient, type RegistryRateLimit } from '../../../src/upstream/registry-client.js'
import { readBounded, readLimited } from '../../../src/io/bounded-body.js'
import { UpstreamRateLimitedError, UpstreamStatusError, UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import type { Credential } from '../../../src/upstream/upstream.js'
import { FakeClock } from '../fakes/clock.js'
import { silentLog } from '../fakes/log.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** A node:http server on 127.0.0.1 whose handler each test sets; it records what it was sent. */
class Stand {
  handler: Handler = (_req, res) => {
    res.writeHead(500).end()
  }
  readonly seen: Array<{ method: string, url: string, authorization: string | undefined, host: string | undefined }> = []
  private readonly server: Server
  port = 0

  constructor () {
    this.server = createServer((req, res) => {
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, host: req.headers.host })
      this.handler(req, res)
    })
  }

  get origin (): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start (): Promise<this> {
    await new Promise<void>(resolve => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port
    return this
  }

  async stop (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise(resolve => this.server.close(resolve))
  }
}

const MANIFEST = '/v2/library/alpine/manifests/latest'

function json (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers }).end(text)
}

describe('RegistryClient: the pull API of one upstream registry', () => {
  let stand: Stand
  let storage: Stand
  let client: RegistryClient | undefined
  let clock: FakeClock
  let limits: RegistryRateLimit[]

  function open (credential?: Credential): RegistryClient {
    const opened = new RegistryClient({
      upstream: { name: 'reg', url: new URL(stand.origin) },
      ...(credential !== undefined ? { credential } : {}),
      timeoutMs: 2000,
      log: silentLog(),
      clock,
      onRateLimit: (_name, limit) => {
        limits.push(limit)
      }
    })
    client = opened
    return opened
  }

  /** A registry that wants a Bearer token from its /token realm (`expires_in` seconds). */
  function bearerRegistry (expiresIn = 300): { tokens: () => number } {
    let minted = 0
    stand.handler = (req, res) => {
      const url = new URL(req.url ?? '/', stand.origin)
      if (url.pathname === '/token') {
        minted++
        json(res, 200, {
          token: `t${minted}`,
          expires_in: expiresIn,
          scope: url.searchParams.getAll('scope').join(' '),
          basic: req.headers.authorization ?? null
        })
        return
      }
      if (req.headers.authorization?.startsWith('Bearer t') !== true) {
        const repo = url.pathname.split('/').slice(2, -2).join('/')
        json(
          res,
          401,
          { errors: [{ code: 'UNAUTHORIZED' }] },
          { 'www-authenticate': `Bearer realm="${stand.origin}/token",service="reg.test",scope="repository:${repo}:pull"` }
        )
        return
      }
      json(res, 200, { schemaVersion: 2, token: req.headers.authorization })
    }
    return { tokens: () => minted }
  }

  beforeEach(async () => {
    stand = await new Stand().start()
    storage = await new Stand().start()
    clock = new FakeClock()
    limits = []
  })

  afterEach(async () => {
    await client?.close()
    client = undefined
    await stand.stop()
    await storage.stop()
  })

  it('answers a Bearer challenge with a token for the repository scope, and reuses it for that scope', async () => {
    const registry = bearerRegistry()
    const client = open()
    const res = await client.send('GET', 'library/alpine', MANIFEST, {})
    assert.equal(res.status, 200)
    assert.match(await readLimited(res.body, 1000), /Bearer t1/)
    const tokenRequest = stand.seen.find(s => s.url.startsWith('/token'))
    assert.ok(tokenRequest?.url.includes('scope=repository%3Alibrary%2Falpine%3Apull'))
    assert.ok(tokenRequest?.url.includes('service=reg.test'))
    const again = await client.send('GET', 'library/alpine', MANIFEST, {})
    await readLimited(again.body, 1000)
    assert.equal(registry.tokens(), 1)
    assert.equal(stand.seen.at(-1)?.authorization, 'Bearer t1', 'the cached token is sent up front')
    assert.equal(stand.seen.filter(s => s.url === MANIFEST).length, 3, 'one 401, then two authorized requests')
  })

  it('a token is renewed before it expires (FakeClock), and each repository scope has its own', async () => {
    const registry = bearerRegistry(60)
    const client = open()
    await readLimited((await client.send('GET', 'library/alpine', MANIFEST, {})).body, 1000)
    clock.advance(49_000)
    await readLimited((await client.send('GET', 'library/alpine', MANIFEST, {})).body, 1000)
    assert.equal(registry.tokens(), 1, 'still valid at 49 s of 60')
    clock.advance(2_000)
    await readLimited((await client.send('GET', 'library/alpine', MANIFEST, {})).body, 1000)
    assert.equal(registry.tokens(), 2, 'renewed 10 s before its expiry')
    await readLimited((await client.send('GET', 'library/redis', '/v2/library/redis/manifests/7', {})).body, 1000)
    assert.equal(registry.tokens(), 3)
  })

  it('with credentials, the token request carries them as Basic auth', async () => {
    bearerRegistry()
    const client = open({ username: 'user', password: 'p:ss' })
    const res = await client.send('GET', 'library/alpine', MANIFEST, {})
    await readLimited(res.body, 1000)
    const tokenRequest = stand.seen.find(s => s.url.startsWith('/token'))
    assert.equal(tokenRequest?.authorization, `Basic ${Buffer.from('user:p:ss').toString('base64')}`)
  })

  it('a Basic challenge is answered with the credentials, which are then sent up front', async () => {
    const basic = `Basic ${Buffer.from('u:p').toString('base64')}`
    stand.handler = (req, res) => {
      if (req.headers.authorization !== basic) json(res, 401, {}, { 'www-authenticate': 'Basic realm="reg"' })
      else json(res, 200, { ok: true })
    }
    const client = open({ username: 'u', password: 'p' })
    assert.equal((await client.send('GET', 'library/alpine', MANIFEST, {})).status, 200)
    assert.equal((await client.send('GET', 'library/alpine', MANIFEST, {})).status, 200)
    assert.deepEqual(stand.seen.map(s => s.authorization), [undefined, basic, basic])
  })

  it('a 401 without a usable challenge is returned as is, and sendOk makes it an UpstreamStatusError with the body', async () => {
    stand.handler = (_req, res) => {
      json(res, 401, { errors: [{ code: 'DENIED', message: 'no way' }] })
    }
    const client = open()
    const res = await client.send('GET', 'library/alpine', MANIFEST, {})
    assert.equal(res.status, 401)
    res.body.resume()
    await assert.rejects(client.sendOk('GET', 'library/alpine', MANIFEST, {}), (err: unknown) => {
      assert.ok(err instanceof UpstreamStatusError)
      assert.equal(err.status, 401)
      assert.match(err.body, /no way/)
      assert.equal(err.contentType, 'application/json')
      return true
    })
  })

  it('sendOk on a HEAD that fails has an empty body (there is none to read)', async () => {
    stand.handler = (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' }).end()
    }
    const client = open()
    await assert.rejects(
      client.sendOk('HEAD', 'library/alpine', MANIFEST, {}),
      (err: unknown) => err instanceof UpstreamStatusError && err.status === 404 && err.body === ''
    )
  })

  it('a 429 is an UpstreamRateLimitedError with the Retry-After; rate-limit headers are reported', async () => {
    stand.handler = (_req, res) => {
      json(
        res,
        429,
        { errors: [{ code: 'TOOMANYREQUESTS' }] },
        { 'retry-after': '120', 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' }
      )
    }
    const client = open()
    await assert.rejects(client.send('GET', 'library/alpine', MANIFEST, {}), (err: unknown) => {
      assert.ok(err instanceof UpstreamRateLimitedError)
      assert.ok(err instanceof UpstreamUnavailableError, 'still "unavailable" for the fallbacks')
      assert.equal(err.retryAfter, '120')
      assert.equal(err.status, 429)
      assert.match(err.message, /TOOMANYREQUESTS/)
      return true
    })
    assert.deepEqual(limits, [{ remaining: 0, limit: 100, windowS: 21600 }])
  })

  it("Docker Hub's ratelimit-remaining on a 200 is reported", async () => {
    stand.handler = (_req, res) => {
      json(res, 200, {}, { 'ratelimit-remaining': '76;w=21600', 'ratelimit-limit': '100;w=21600' })
    }
    const client = open()
    ;(await client.send('GET', 'library/alpine', MANIFEST, {})).body.resume()
    assert.deepEqual(limits, [{ remaining: 76, limit: 100, windowS: 21600 }])
  })

  it('a 5xx is an UpstreamUnavailableError with its status and the start of the body', async () => {
    stand.handler = (_req, res) => {
      res.writeHead(503).end('maintenance')
    }
    const client = open()
    await assert.rejects(
      client.send('GET', 'library/alpine', MANIFEST, {}),
      (err: unknown) =>
        err instanceof UpstreamUnavailableError && !(err instanceof UpstreamRateLimitedError) && err.status === 503 &&
        /503 maintenance/.test(err.message) && /upstream reg unavailable/.test(err.message)
    )
  })

  it('a refused connection is an UpstreamUnavailableError naming the target', async () => {
    await stand.stop()
    const client = open()
    await assert.rejects(
      client.send('GET', 'library/alpine', MANIFEST, {}),
      (err: unknown) =>
        err instanceof UpstreamUnavailableError && err.status === undefined && err.message.includes(`127.0.0.1:${stand.port}${MANIFEST}`)
    )
    stand = await new Stand().start()
  })

  it('a token server that answers 429 or 5xx makes the request unavailable; one that refuses leaves the 401', async () => {
    let tokenStatus = 429
    stand.handler = (req, res) => {
      if ((req.url ?? '').startsWith('/token')) {
        json(res, tokenStatus, {}, { 'retry-after': '9' })
        return
      }
      json(res, 401, {}, { 'www-authenticate': `Bearer realm="${stand.origin}/token",service="reg"` })
    }
    const client = open()
    await assert.rejects(
      client.send('GET', 'library/alpine', MANIFEST, {}),
      (err: unknown) => err instanceof UpstreamRateLimitedError && err.retryAfter === '9'
    )
    tokenStatus = 502
    await assert.rejects(
      client.send('GET', 'library/alpine', MANIFEST, {}),
      (err: unknown) => err instanceof UpstreamUnavailableError && err.status === 502
    )
    tokenStatus = 403
    const res = await client.send('GET', 'library/alpine', MANIFEST, {})
    assert.equal(res.status, 401)
    res.body.resume()
  })

  it('a redirect to blob storage on another host is followed without the registry credentials', async () => {
    const blob = '/v2/library/alpine/blobs/sha256:abc'
    bearerRegistry()
    const registry = stand.handler
    stand.handler = (req, res) => {
      if (req.url === blob && req.headers.authorization !== undefined) {
        res.writeHead(307, { location: `${storage.origin}/presigned/abc?sig=1` }).end()
        return
      }
      registry(req, res)
    }
    storage.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '5' }).end('bytes')
    }
    const client = open()
    const res = await client.send('GET', 'library/alpine', blob, {})
    assert.equal(res.status, 200)
    assert.equal(await readLimited(res.body, 100), 'bytes')
    assert.deepEqual(storage.seen.map(s => [s.url, s.authorization]), [['/presigned/abc?sig=1', undefined]])
  })

  it('a redirect loop ends with an UpstreamUnavailableError after 5 hops', async () => {
    stand.handler = (req, res) => {
      res.writeHead(302, { location: `${req.url ?? '/'}x` }).end()
    }
    const client = open()
    await assert.rejects(client.send('GET', 'library/alpine', MANIFEST, {}), /more than 5 redirects/)
    assert.equal(stand.seen.length, 6)
  })

  it('readBounded gives the body up to its limit, and undefined (the rest discarded) past it', async () => {
    assert.equal((await readBounded(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), 4))?.toString(), 'abcd')
    assert.equal(await readBounded(Readable.from([Buffer.from('ab'), Buffer.from('cde')]), 4), undefined)
    assert.equal(await readLimited(Readable.from([Buffer.from('ab'), Buffer.from('cde')]), 4), 'ab')
  })
})
