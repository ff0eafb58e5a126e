import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request, type IncomingMessage, type Server } from 'node:http'
import { request as httpsRequest, type Server as HttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { ListenError, createHttpServer, createHttpsServer, listen, type RouteGroup } from '../../../src/http/server.js'
import type { HttpLimits } from '../../../src/http/limits.js'
import { sendJson } from '../../../src/http/respond.js'
import { recordingLog } from '../fakes/recording-log.js'
import { closeServer, eventually, listenLocal, rawClient } from './local.js'
import { TEST_CERT, TEST_KEY } from './tls-fixture.js'

const LIMITS: HttpLimits = { headerTimeoutMs: 5000, idleTimeoutMs: 1000, stallTimeoutMs: 5000, maxConnections: 64 }

interface Reply {
  status: number
  headers: IncomingMessage['headers']
  body: string
}

async function get (port: number, path: string, method = 'GET'): Promise<Reply> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, method, agent: false }, resolve).on('error', reject).end()
  })
  let body = ''
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => {
    body += chunk
  })
  await once(res, 'end')
  return { status: res.statusCode ?? 0, headers: res.headers, body }
}

/** A route group that takes the paths under `prefix`, answering with its name. */
function group (name: string, prefix: string, seen: string[]): RouteGroup {
  return {
    handle: async (_req, res, url) => {
      seen.push(`${name} ${url.pathname}`)
      if (!url.pathname.startsWith(prefix)) return false
      sendJson(res, 200, { by: name, path: url.pathname, query: url.searchParams.get('ns') })
      return true
    }
  }
}

describe('createHttpServer: routing, errors, CONNECT', () => {
  const { log, lines } = recordingLog('debug')
  const seen: string[] = []
  let server: Server
  let port: number

  before(async () => {
    const failing: RouteGroup = {
      handle: async (_req, res, url) => {
        if (url.pathname === '/throws') throw new Error('route bug')
        if (url.pathname === '/throws-mid-body') {
          res.writeHead(200, { 'content-length': '100' })
          res.write('partial')
          throw new Error('route bug after the headers')
        }
        return false
      }
    }
    server = createHttpServer([failing, group('registry', '/v2/', seen), group('admin', '/api/', seen)], log, LIMITS)
    port = await listenLocal(server)
  })
  after(async () => {
    await closeServer(server)
  })

  it('each request goes to the first group that takes it; later groups are not asked', async () => {
    seen.length = 0
    const reply = await get(port, '/v2/library/alpine/manifests/latest?ns=docker.io')
    assert.equal(reply.status, 200)
    assert.deepEqual(JSON.parse(reply.body), { by: 'registry', path: '/v2/library/alpine/manifests/latest', query: 'docker.io' })
    assert.deepEqual(seen, ['registry /v2/library/alpine/manifests/latest'])
    seen.length = 0
    assert.equal(JSON.parse((await get(port, '/api/cache/stats')).body).by, 'admin')
    assert.deepEqual(seen, ['registry /api/cache/stats', 'admin /api/cache/stats'])
  })

  it('a path no group takes is 404 JSON naming it', async () => {
    const reply = await get(port, '/nowhere')
    assert.equal(reply.status, 404)
    assert.equal(reply.headers['content-type'], 'application/json')
    assert.deepEqual(JSON.parse(reply.body), { error: 'no such endpoint /nowhere' })
  })

  it('a route that throws gives 500 JSON (no stack to the client) and an error log line', async () => {
    const reply = await get(port, '/throws')
    assert.equal(reply.status, 500)
    assert.deepEqual(JSON.parse(reply.body), { error: 'internal error' })
    const line = lines.find(l => l.msg === 'unhandled request error')
    assert.equal(line?.err, 'route bug')
    assert.equal(line?.level, 50)
  })

  it('a route that throws after its headers went out cuts the connection: no half body passes as whole', async () => {
    await assert.rejects(get(port, '/throws-mid-body'), /aborted|socket hang up|ECONNRESET/)
  })

  it('a request URL that cannot be parsed is 400', async () => {
    const client = await rawClient(port, 'GET // HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 400 /)
    assert.match(client.received(), /malformed request URL/)
  })

  it('CONNECT gets 405 with Allow (RFC 9110 9.3.6): this is no forward proxy', async () => {
    const client = await rawClient(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
    await client.closed
    const [head = '', body = ''] = client.received().split('\r\n\r\n')
    assert.match(head, /^HTTP\/1\.1 405 Method Not Allowed/)
    assert.match(head, /\r\nallow: GET, HEAD, PUT, POST, DELETE/i)
    assert.match(head, new RegExp(`content-length: ${Buffer.byteLength(body)}`))
    assert.deepEqual(JSON.parse(body), { error: 'CONNECT: this is a cache, not a forward proxy' })
  })

  it('CONNECT under /v2 gets the OCI error body, as every registry route does', async () => {
    const client = await rawClient(port, 'CONNECT /v2/ HTTP/1.1\r\nHost: x\r\n\r\n')
    await client.closed
    const body = client.received().split('\r\n\r\n')[1] ?? ''
    const parsed = JSON.parse(body) as { errors: Array<{ code: string }> }
    assert.equal(parsed.errors[0]?.code, 'UNSUPPORTED')
  })
})

describe('createHttpsServer: the same routes over TLS', () => {
  const { log, lines } = recordingLog('debug')
  let server: HttpsServer
  let port: number

  before(async () => {
    const tlsAware: RouteGroup = {
      handle: async (req, res) => {
        sendJson(res, 200, { encrypted: (req.socket as TLSSocket).encrypted === true })
        return true
      }
    }
    server = createHttpsServer([tlsAware], { cert: Buffer.from(TEST_CERT), key: Buffer.from(TEST_KEY) }, log, LIMITS)
    port = await listenLocal(server)
  })
  after(async () => {
    await closeServer(server)
  })

  it('serves the routes over TLS, and a route can tell it is HTTPS', async () => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      httpsRequest({ host: '127.0.0.1', port, path: '/', ca: TEST_CERT, agent: false }, resolve).on('error', reject).end()
    })
    let body = ''
    res.on('data', (chunk: Buffer) => {
      body += chunk.toString()
    })
    await once(res, 'end')
    assert.equal(res.statusCode, 200)
    assert.deepEqual(JSON.parse(body), { encrypted: true })
  })

  it('a client that fails the handshake is logged at debug, not as an error', async () => {
    const client = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await client.closed
    await eventually('the handshake log line', () => lines.some(l => l.msg === 'TLS handshake failed'))
    const line = lines.find(l => l.msg === 'TLS handshake failed')
    assert.equal(line?.level, 20)
    assert.ok(!lines.some(l => l.level >= 50), 'no error was logged')
  })
})

describe('listen: binding a listener', () => {
  const servers: Server[] = []
  after(async () => {
    for (const s of servers) await closeServer(s)
  })

  it('returns the bound address, with the real port for port 0', async () => {
    const server = createHttpServer([], recordingLog().log, LIMITS)
    servers.push(server)
    const bound = await listen(server, { host: '127.0.0.1', port: 0 })
    assert.equal(bound.host, '127.0.0.1')
    assert.ok(bound.port > 0)
  })

  it('a port in use is a ListenError naming the variable, the address and what to do', async () => {
    const first = createHttpServer([], recordingLog().log, LIMITS)
    servers.push(first)
    const { port } = await listen(first, { host: '127.0.0.1', port: 0 })
    const second = createHttpServer([], recordingLog().log, LIMITS)
    servers.push(second)
    await assert.rejects(listen(second, { host: '127.0.0.1', port }, 'CACHE_HTTPS_ADDR'), (err: unknown) => {
      assert.ok(err instanceof ListenError)
      assert.equal(
        err.message,
        `cannot listen on CACHE_HTTPS_ADDR=127.0.0.1:${port}: the port is in use (another sidecar, or another server); pick a free one with CACHE_HTTPS_ADDR`
      )
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE')
      return true
    })
    assert.equal(second.listening, false)
  })
})
