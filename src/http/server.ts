import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { createServer as createTlsServer, type Server as HttpsServer } from 'node:https'
import type { Server as NetServer } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { HostPort } from './host-port.js'
import type { TlsFiles } from './tls.js'
import { sendJson } from './respond.js'
import { OciError } from '../oci/errors.js'
import { accessLog } from './access-log.js'
import { guardConnections, serverOptions, type HttpLimits } from './limits.js'
import { P2pCacheError, EXIT_USAGE } from '../errors/p2p-cache-error.js'

/** A route group answers the request and returns true, or returns false to pass it on. */
export interface RouteGroup {
  handle: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
}

/**
 * The plain HTTP listener (CACHE_HTTP_ADDR), holding clients to `limits` (header, idle and
 * stall timeouts, connection count: see limits.ts).
 */
export function createHttpServer (routes: RouteGroup[], log: Logger, limits: HttpLimits): Server {
  const server = createServer(serverOptions(limits), dispatch(routes, log))
  guardConnections(server, limits, log.child({ component: 'http' }))
  refuseConnect(server)
  return server
}

/**
 * The HTTPS listener (CACHE_HTTPS_ADDR): the same routes and limits, for clients that only speak
 * HTTPS (gh). A route that needs to know (absolute URLs it hands out) sees `req.socket.encrypted`.
 */
export function createHttpsServer (routes: RouteGroup[], tls: TlsFiles, log: Logger, limits: HttpLimits): HttpsServer {
  const server = createTlsServer({ ...serverOptions(limits), cert: tls.cert, key: tls.key }, dispatch(routes, log))
  guardConnections(server, limits, log.child({ component: 'http' }))
  refuseConnect(server)
  // A client that gives up on the handshake (untrusted certificate) is its business, not an error of ours.
  server.on('tlsClientError', (err: Error) => {
    log.debug({ err: err.message }, 'TLS handshake failed')
  })
  return server
}

/**
 * The sidecar is no forward proxy: CONNECT gets 405 (RFC 9110 9.3.6), where Node would drop the
 * connection without a word when nothing listens for it.
 */
function refuseConnect (server: Server | HttpsServer): void {
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const message = 'CONNECT: this is a cache, not a forward proxy'
    // Under /v2/ every error is an OCI error body, as on the registry routes.
    const body = (req.url ?? '').startsWith('/v2') ? new OciError(405, 'UNSUPPORTED', message).body() : JSON.stringify({ error: message })
    socket.on('error', () => {})
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, PUT, POST, DELETE\r\ncontent-type: application/json\r\ncontent-length: ${
        Buffer.byteLength(body)
      }\r\nconnection: close\r\n\r\n${body}`
    )
  })
}

/** Each request goes to the first route group that takes it; none = 404. */
function dispatch (routes: RouteGroup[], log: Logger): RequestListener {
  const access = accessLog(log)
  return (req, res) => {
    access?.(req, res)
    void (async () => {
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://sidecar')
      } catch {
        sendJson(res, 400, { error: 'malformed request URL' })
        return
      }
      for (const group of routes) {
        if (await group.handle(req, res, url)) return
      }
      sendJson(res, 404, { error: `no such endpoint ${url.pathname.slice(0, 200)}` })
    })().catch((err: Error) => {
      log.error({ err: err.message, url: req.url }, 'unhandled request error')
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' })
      else res.destroy()
    })
  }
}

/** A listener could not bind: the message names the variable and what to change. */
export class ListenError extends P2pCacheError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, { ...options, exitCode: EXIT_USAGE })
  }
}

/**
 * Binds `server` to `addr`, configured as `variable` (CACHE_HTTP_ADDR, CACHE_HTTPS_ADDR).
 * @throws ListenError for an address in use, not of this host, or needing privileges
 */
export async function listen (server: NetServer, addr: HostPort, variable = 'CACHE_HTTP_ADDR'): Promise<HostPort> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const where = `${variable}=${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`
    const why = code === 'EADDRINUSE'
      ? 'the port is in use (another sidecar, or another server); pick a free one'
      : code === 'EADDRNOTAVAIL'
      ? 'that is not an address of this host; use 127.0.0.1, 0.0.0.0 or one of its addresses'
      : code === 'EACCES'
      ? 'a port below 1024 needs privileges; use a higher one'
      : (err as Error).message
    throw new ListenError(`cannot listen on ${where}: ${why} with ${variable}`, { cause: err })
  }
  const bound = server.address()
  return typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : addr
}
