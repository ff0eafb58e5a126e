import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { clientLeft } from '../../../src/http/client-left.js'
import { REQUEST_TIMEOUT_MS } from '../../../src/http/constants.js'
import { connectionBound, guardConnections, serverOptions, type HttpLimits } from '../../../src/http/limits.js'
import { recordingLog, type LogLine } from '../fakes/recording-log.js'
import { closeServer, eventually, listenLocal, rawClient, type RawClient } from './local.js'

const LIMITS: HttpLimits = { headerTimeoutMs: 10_000, idleTimeoutMs: 65_000, stallTimeoutMs: 60_000, maxConnections: 4096 }

function procLimits (openFiles: string): string {
  return [
    'Limit                     Soft Limit           Hard Limit           Units',
    'Max cpu time              unlimited            unlimited            seconds',
    `Max open files            ${openFiles.padEnd(20)} ${openFiles.padEnd(20)} files`,
    'Max locked memory         8388608              8388608              bytes'
  ].join('\n')
}

describe("serverOptions: Node's own limits from HttpLimits", () => {
  it('maps header, idle and handshake timeouts; the request timeout never falls below the header timeout', () => {
    const o = serverOptions(LIMITS)
    assert.equal(o.headersTimeout, 10_000)
    assert.equal(o.keepAliveTimeout, 65_000)
    assert.equal(o.handshakeTimeout, 10_000, 'a client that never finishes the TLS handshake is a slow client too')
    assert.equal(o.requestTimeout, REQUEST_TIMEOUT_MS)
    assert.equal(o.maxHeaderSize, 16 * 1024)
    assert.equal(
      serverOptions({ ...LIMITS, headerTimeoutMs: REQUEST_TIMEOUT_MS * 2 }).requestTimeout,
      REQUEST_TIMEOUT_MS * 2,
      'Node refuses requestTimeout < headersTimeout'
    )
  })

  it('checks the timeouts at least 4 times per header timeout, between 25 ms and 1 s', () => {
    assert.equal(serverOptions(LIMITS).connectionsCheckingInterval, 1000)
    assert.equal(serverOptions({ ...LIMITS, headerTimeoutMs: 2000 }).connectionsCheckingInterval, 500)
    assert.equal(serverOptions({ ...LIMITS, headerTimeoutMs: 40 }).connectionsCheckingInterval, 25)
  })
})

describe('connectionBound: connections that fit the open-file limit', () => {
  it('keeps the configured bound when it fits, or when the limit is unknown or unlimited', () => {
    const { log, lines } = recordingLog()
    assert.equal(connectionBound(100, 2, log, procLimits('1048576')), 100)
    assert.equal(connectionBound(4096, 2, log, procLimits('unlimited')), 4096)
    assert.equal(connectionBound(4096, 2, log, undefined), 4096)
    assert.equal(connectionBound(4096, 2, log, 'no such line'), 4096)
    assert.deepEqual(lines, [])
  })

  it('lowers it to (limit - 512) / (2 x listeners), with a warning that says how to raise the limit', () => {
    const { log, lines } = recordingLog()
    assert.equal(connectionBound(4096, 2, log, procLimits('1024')), 128)
    assert.equal(lines.length, 1)
    assert.equal(lines[0]?.level, 40)
    assert.match(
      lines[0]?.msg ?? '',
      /CACHE_HTTP_MAX_CONNECTIONS=4096 does not fit this process's open-file limit \(1024\): using 128 per listener/
    )
    assert.match(lines[0]?.msg ?? '', /ulimit -n.*--ulimit nofile.*LimitNOFILE/)
  })

  it('shares a tiny limit half and half, and never goes below one connection', () => {
    const { log } = recordingLog()
    assert.equal(connectionBound(4096, 1, log, procLimits('100')), 25)
    assert.equal(connectionBound(4096, 2, log, procLimits('3')), 1)
    assert.equal(connectionBound(4096, 0, log, procLimits('1024')), 256, 'zero listeners counts as one')
  })
})

/** Open connections of `server` (Node's count, which `maxConnections` is checked against). */
function connections (server: Server): number {
  return (server as unknown as { _connections: number })._connections
}

/** A server with `limits` applied, as createHttpServer makes it. */
async function start (
  limits: Partial<HttpLimits>,
  handler: (req: IncomingMessage, res: ServerResponse) => void
): Promise<{ server: Server, port: number, lines: LogLine[] }> {
  const all = { ...LIMITS, ...limits }
  const { log, lines } = recordingLog()
  const server = createServer(serverOptions(all), handler)
  guardConnections(server, all, log)
  return { server, port: await listenLocal(server), lines }
}

describe('guardConnections: clients that hold a connection without using it are cut (real sockets)', () => {
  let server: Server | undefined
  const clients: RawClient[] = []

  afterEach(async () => {
    for (const c of clients.splice(0)) c.socket.destroy()
    if (server !== undefined) await closeServer(server)
    server = undefined
  })

  async function client (port: number, text?: string): Promise<RawClient> {
    const c = await rawClient(port, text)
    clients.push(c)
    return c
  }

  it('a client that does not finish its headers in time gets 408 and is closed', async () => {
    const s = await start({ headerTimeoutMs: 150 }, (_req, res) => {
      res.end('ok')
    })
    server = s.server
    const started = Date.now()
    const c = await client(s.port, 'GET / HTTP/1.1\r\nHost: x\r\n')
    await c.closed
    const took = Date.now() - started
    assert.match(c.received(), /^HTTP\/1\.1 408 /)
    assert.ok(took >= 120 && took < 1500, `closed after ${took} ms`)
  })

  it('a kept-alive connection with no request is closed after the idle timeout', async () => {
    const s = await start({ idleTimeoutMs: 150 }, (_req, res) => {
      res.end('ok')
    })
    server = s.server
    const c = await client(s.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await eventually('the response', () => c.received().endsWith('ok'))
    const answered = Date.now()
    await c.closed
    const idle = Date.now() - answered
    // Node gives the socket timer a second more than the advertised keep-alive timeout.
    assert.ok(idle >= 120 && idle < 2500, `closed after ${idle} ms idle`)
  })

  it('a client that stops reading a response is disconnected, which aborts the response', async () => {
    let left: AbortSignal | undefined
    const s = await start({ stallTimeoutMs: 100 }, (_req, res) => {
      left = clientLeft(res)
      res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) })
      const chunk = Buffer.alloc(256 * 1024)
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) {}
      }
      res.on('drain', pump)
      pump()
    })
    server = s.server
    const c = await client(s.port, 'GET /blob HTTP/1.1\r\nHost: x\r\n\r\n')
    await once(c.socket, 'data')
    c.socket.pause()
    await eventually('the stalled response to be aborted', () => left?.aborted === true, 3000)
    assert.match((left?.reason as Error | undefined)?.message ?? '', /client closed the connection/)
    const line = s.lines.find(l => l.msg.includes('stopped reading'))
    assert.ok(line !== undefined, JSON.stringify(s.lines))
    assert.match(line.msg, /CACHE_HTTP_STALL_TIMEOUT/)
    assert.equal(line.stallMs, 100)
    assert.equal(line.url, '/blob')
  })

  it('a client that announces a body and stops sending it is disconnected', async () => {
    let aborted = false
    const s = await start({ stallTimeoutMs: 100 }, (req, res) => {
      req.on('error', () => {})
      clientLeft(res).addEventListener('abort', () => {
        aborted = true
      })
      req.resume()
    })
    server = s.server
    const c = await client(s.port, 'PATCH /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a few bytes')
    await c.closed
    await eventually('the response to be aborted', () => aborted)
    assert.ok(s.lines.some(l => l.msg.includes('stopped sending the request body')), JSON.stringify(s.lines))
  })

  it('a client waiting on a slow sidecar (an upstream taking its time) is not cut', async () => {
    const s = await start({ stallTimeoutMs: 60 }, (_req, res) => {
      setTimeout(() => {
        res.end('worth the wait')
      }, 250)
    })
    server = s.server
    const c = await client(s.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await c.closed
    assert.match(c.received(), /^HTTP\/1\.1 200 [\s\S]*worth the wait$/)
    assert.deepEqual(s.lines, [], 'nothing to report: the client did nothing wrong')
  })

  it('a connection that has sent nothing yet is left to the header timeout, not the stall timeout', async () => {
    const s = await start({ stallTimeoutMs: 40, headerTimeoutMs: 300 }, (_req, res) => {
      res.end('ok')
    })
    server = s.server
    const started = Date.now()
    const c = await client(s.port)
    await c.closed
    const took = Date.now() - started
    assert.ok(took >= 250, `closed after ${took} ms: the 40 ms stall timeout must not apply before a request`)
  })

  it('connections past the bound are closed as they arrive, with one warning per flood; a freed slot is usable again', async () => {
    const s = await start({ maxConnections: 2 }, (_req, res) => {
      res.end('ok')
    })
    server = s.server
    const keepAlive = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
    const a = await client(s.port, keepAlive)
    const b = await client(s.port, keepAlive)
    await eventually('both answered', () => a.received().endsWith('ok') && b.received().endsWith('ok'))
    const over1 = await client(s.port, keepAlive)
    const over2 = await client(s.port, keepAlive)
    await over1.closed
    await over2.closed
    assert.equal(over1.received(), '', 'dropped without an answer')
    assert.equal(over2.received(), '')
    const warnings = s.lines.filter(l => l.msg.startsWith('HTTP connection limit reached'))
    assert.equal(warnings.length, 1, 'one warning, not one per socket')
    assert.equal(warnings[0]?.maxConnections, 2)
    assert.match(warnings[0]?.msg ?? '', /raise CACHE_HTTP_MAX_CONNECTIONS/)

    a.socket.destroy()
    await a.closed
    await eventually('the slot to be freed', () => connections(s.server) === 1)
    const again = await client(s.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await again.closed
    assert.match(again.received(), /^HTTP\/1\.1 200 /)
  })
})
