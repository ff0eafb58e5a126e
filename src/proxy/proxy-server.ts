import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse
} from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as netConnect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import type { Stats } from '../metrics/stats.js'
import { trustedCa } from '../upstream/trust.js'
import type { ProxyCa } from './ca.js'
import type { HostList } from './host-list.js'
import { guardedLookup, literalRefusal, parseAuthority, ProxyRefusedError, type Authority } from './destination.js'
import { CONNECT_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS } from './constants.js'

/**
 * Answers a request the proxy intercepted (TLS terminated) for `target`; returns false to let it
 * pass through to the real host. The cache's routes (registries, immutable downloads) are these.
 */
export interface InterceptRoute {
  handle: (target: Authority, req: IncomingMessage, res: ServerResponse) => Promise<boolean>
}

export interface ProxyServerInit {
  /** CACHE_PROXY_INTERCEPT: hosts whose TLS is terminated with a leaf from `ca`. */
  intercept: HostList
  /** CACHE_PROXY_ALLOW: when not empty, the only hosts the proxy connects to (intercepted or not). */
  allow: HostList
  ca: ProxyCa
  /** The sidecar's own listening ports: a CONNECT back into them is refused. */
  ownPorts: () => readonly number[]
  /** Extra CA certificates (PEM) trusted for upstream TLS, besides the system roots (CACHE_UPSTREAM_CA_FILE). */
  upstreamCa?: string[] | undefined
  routes?: InterceptRoute[]
  /** Requests, tunnels and refusals per host (GET /api/cache/stats, /metrics). */
  stats?: Pick<Stats, 'proxied'> | undefined
  log: Logger
}

/** Hop-by-hop fields (RFC 9110 7.6.1): never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade'
])

/**
 * The forward proxy (CACHE_PROXY_ADDR, issue 24): `CONNECT host:port` (RFC 9110 9.3.6) to an
 * intercepted host is answered here, its TLS terminated with a leaf the sidecar's CA mints, and
 * its requests go to the intercept routes (or through to the host, its certificate verified);
 * to any other host it is a plain tunnel. Absolute-form `http://` requests are forwarded. Never
 * to link-local or metadata addresses, nor back into the sidecar's own ports; only to
 * CACHE_PROXY_ALLOW's hosts when that is set.
 */
export class ProxyServer {
  /** The listener; `listen` it on CACHE_PROXY_ADDR. */
  readonly server: Server
  /** Parses the requests of intercepted (TLS-terminated) connections; never listens itself. */
  private readonly inner: Server
  /** The roots plus CACHE_UPSTREAM_CA_FILE; undefined = the default roots. */
  private readonly upstreamCa: string[] | undefined
  private readonly log: Logger

  constructor (private readonly init: ProxyServerInit) {
    this.log = init.log
    this.upstreamCa = trustedCa(init.upstreamCa)
    this.server = createServer((req, res) => {
      void this.forwardPlain(req, res)
    })
    this.server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onConnect(req, socket as Socket, head)
    })
    this.inner = createServer((req, res) => {
      void this.onIntercepted(req, res)
    })
  }

  private onConnect (req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {})
    const target = parseAuthority(req.url ?? '')
    if (target === undefined) {
      refuse(socket, new ProxyRefusedError(400, `CONNECT needs host:port, not "${(req.url ?? '').slice(0, 100)}"`))
      return
    }
    const denied = this.notAllowed(target.host)
    if (denied !== undefined) {
      this.log.info({ host: target.host, port: target.port }, 'proxy refused a CONNECT: the host is not on CACHE_PROXY_ALLOW')
      this.init.stats?.proxied(target.host, 'refused')
      refuse(socket, denied)
      return
    }
    if (this.init.intercept.matches(target.host)) this.intercept(target, socket, head)
    else this.tunnel(target, socket, head)
  }

  /** A plain tunnel: bytes both ways, nothing read. */
  private tunnel (target: Authority, socket: Socket, head: Buffer): void {
    const literal = literalRefusal(target.host, target.port, this.init.ownPorts)
    if (literal !== undefined) {
      this.log.info({ host: target.host, port: target.port, err: literal.message }, 'proxy refused a CONNECT')
      this.init.stats?.proxied(target.host, 'refused')
      refuse(socket, literal)
      return
    }
    const upstream = netConnect({
      host: target.host,
      port: target.port,
      lookup: guardedLookup(target.port, this.init.ownPorts),
      timeout: CONNECT_TIMEOUT_MS
    })
    upstream.once('timeout', () => {
      upstream.destroy(
        new ProxyRefusedError(504, `${target.host}:${target.port} did not accept the connection within ${CONNECT_TIMEOUT_MS} ms`)
      )
    })
    let open = false
    upstream.once('connect', () => {
      open = true
      upstream.setTimeout(0)
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      socket.pipe(upstream).pipe(socket)
      this.init.stats?.proxied(target.host, 'tunnels')
      this.log.debug({ host: target.host, port: target.port }, 'proxy tunnel')
    })
    upstream.on('error', err => {
      if (open) {
        socket.destroy()
        return
      }
      const refused = err instanceof ProxyRefusedError
        ? err
        : new ProxyRefusedError(502, `cannot connect to ${target.host}:${target.port}: ${err.message}`)
      this.log.info({ host: target.host, port: target.port, err: refused.message }, 'proxy refused a CONNECT')
      this.init.stats?.proxied(target.host, 'refused')
      refuse(socket, refused)
    })
    socket.once('close', () => upstream.destroy())
  }

  /** TLS terminated here with a leaf for the host; its requests are parsed by `inner`. */
  private intercept (target: Authority, socket: Socket, head: Buffer): void {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (head.length > 0) socket.unshift(head)
    const tls = new TLSSocket(socket, {
      isServer: true,
      ALPNProtocols: ['http/1.1'],
      SNICallback: (name, cb) => {
        // The leaf names the CONNECT host: a client that asks for another name gets that one's
        // certificate only if it is intercepted too (else the handshake fails).
        const host = name === '' ? target.host : name.toLowerCase()
        if (host !== target.host && !this.init.intercept.matches(host)) {
          cb(new Error(`SNI ${host} differs from CONNECT ${target.host}`))
          return
        }
        this.init.ca.context(host).then(ctx => {
          cb(null, ctx)
        }, (err: Error) => {
          cb(err)
        })
      }
    })
    const timer = setTimeout(() => tls.destroy(), HANDSHAKE_TIMEOUT_MS)
    tls.once('secure', () => {
      clearTimeout(timer)
    })
    tls.on('error', (err: Error) => {
      clearTimeout(timer)
      // A client that does not trust the CA closes the handshake: its own error names the certificate.
      this.log.debug({ host: target.host, err: err.message }, 'proxy TLS handshake failed (does the client trust the CA? p2p-cache ca)')
    })
    targets.set(tls, target)
    this.inner.emit('connection', tls)
  }

  private async onIntercepted (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = targets.get(req.socket)
    if (target === undefined) {
      res.destroy()
      return
    }
    const started = performance.now()
    markVia(res)
    res.once('finish', () => {
      this.accessLine(target, req, res, started)
    })
    // The Host a client sends inside the tunnel must be the host it connected to.
    const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '')
    if (host !== '' && host !== target.host) {
      sendError(res, 421, `this connection is for ${target.host}, not ${host.slice(0, 100)}`)
      return
    }
    try {
      for (const route of this.init.routes ?? []) {
        if (await route.handle(target, req, res)) return
      }
      await this.forward(req, res, { protocol: 'https:', ...target })
    } catch (err) {
      this.answerError(res, err as Error, target)
    }
  }

  /** Absolute-form `GET http://host/path` (RFC 9112 3.2.2): forwarded as it is. */
  private async forwardPlain (req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL
    try {
      url = new URL(req.url ?? '')
      if (url.protocol !== 'http:') throw new Error('not http')
    } catch {
      sendError(
        res,
        400,
        'this is a forward proxy: send absolute-form http:// requests, or CONNECT host:port for https (set HTTP_PROXY / HTTPS_PROXY to this address)'
      )
      return
    }
    const target = parseAuthority(`${url.hostname}:${url.port === '' ? 80 : url.port}`)
    if (target === undefined) {
      sendError(res, 400, 'malformed host in the request URL')
      return
    }
    const started = performance.now()
    markVia(res)
    res.once('finish', () => {
      this.accessLine(target, req, res, started)
    })
    try {
      const denied = this.notAllowed(target.host)
      if (denied !== undefined) throw denied
      await this.forward(req, res, { protocol: 'http:', ...target }, `${url.pathname}${url.search}`)
    } catch (err) {
      this.answerError(res, err as Error, target)
    }
  }

  /**
   * Sends `req` on to the real host and streams its answer back (hop-by-hop fields dropped);
   * over https the host's certificate is verified (system roots and CACHE_UPSTREAM_CA_FILE).
   */
  private async forward (
    req: IncomingMessage,
    res: ServerResponse,
    to: Authority & { protocol: 'http:' | 'https:' },
    path = req.url ?? '/'
  ): Promise<void> {
    const literal = literalRefusal(to.host, to.port, this.init.ownPorts)
    if (literal !== undefined) throw literal
    const headers = endToEnd(req.headers)
    const send = to.protocol === 'https:' ? httpsRequest : httpRequest
    await new Promise<void>((resolve, reject) => {
      const out = send({
        host: to.host,
        port: to.port,
        method: req.method,
        path,
        headers,
        lookup: guardedLookup(to.port, this.init.ownPorts),
        timeout: CONNECT_TIMEOUT_MS,
        ...(to.protocol === 'https:' ? { servername: to.host, ...(this.upstreamCa !== undefined ? { ca: this.upstreamCa } : {}) } : {})
      }, upstream => {
        out.setTimeout(0)
        const headers = endToEnd(upstream.headers)
        res.writeHead(upstream.statusCode ?? 502, {
          ...headers,
          via: [headers.via, VIA].flat().filter(v => v !== undefined).join(', '),
          'x-cache': 'MISS',
          'x-cache-source': to.host
        })
        upstream.on('data', (chunk: Buffer) => {
          sent.set(res, (sent.get(res) ?? 0) + chunk.byteLength)
        })
        upstream.pipe(res)
        upstream.once('end', resolve)
        upstream.once('error', reject)
        res.once('close', () => {
          upstream.destroy()
          resolve()
        })
      })
      out.once('timeout', () => {
        out.destroy(new ProxyRefusedError(504, `${to.host} did not answer within ${CONNECT_TIMEOUT_MS} ms`))
      })
      out.once('error', reject)
      req.pipe(out)
    })
  }

  private notAllowed (host: string): ProxyRefusedError | undefined {
    if (this.init.allow.empty || this.init.allow.matches(host)) return undefined
    return new ProxyRefusedError(403, `${host} is not on CACHE_PROXY_ALLOW; add it there to let clients reach it through the proxy`)
  }

  private answerError (res: ServerResponse, err: Error, target: Authority): void {
    const refused = err instanceof ProxyRefusedError
      ? err
      : (err as NodeJS.ErrnoException).code === 'EPROXYREFUSED'
      ? new ProxyRefusedError(403, err.message)
      : new ProxyRefusedError(502, `${target.host}: ${err.message}`)
    this.log.info({ host: target.host, status: refused.status, err: refused.message }, 'proxy request failed')
    failed.add(res)
    if (!res.headersSent) sendError(res, refused.status, refused.message)
    else res.destroy()
  }

  /** One line per proxied request: the host and path, never the query (it may hold tokens) or headers. */
  private accessLine (target: Authority, req: IncomingMessage, res: ServerResponse, started: number): void {
    if (failed.has(res)) this.init.stats?.proxied(target.host, 'refused')
    else {
      this.init.stats?.proxied(
        target.host,
        'requests',
        sent.get(res) ?? Number(res.getHeader('content-length') ?? 0),
        this.init.intercept.entryFor(target.host)
      )
    }
    if (!this.log.isLevelEnabled('info')) return
    const path = (req.url ?? '').replace(/^https?:\/\/[^/]*/, '').split('?')[0]
    const length = res.getHeader('content-length')
    this.log.info({
      component: 'proxy',
      host: target.host,
      method: req.method,
      path,
      status: res.statusCode,
      ...(length !== undefined ? { bytes: Number(length) } : {}),
      cache: res.getHeader('x-cache'),
      ms: Math.round(performance.now() - started)
    }, 'proxied request')
  }

  /** Closes the listener and every intercepted connection. */
  async close (): Promise<void> {
    this.inner.closeAllConnections()
    await new Promise<void>(resolve => {
      this.server.close(() => {
        resolve()
      })
      this.server.closeAllConnections()
    })
  }
}

const VIA = '1.1 p2p-cache'

/**
 * `Via` (RFC 9110 7.6.3) on every answer the proxy gives. Set before the routes answer, it also
 * makes the fields they pass to writeHead readable with getHeader (the access line reads them).
 */
function markVia (res: ServerResponse): void {
  res.setHeader('via', VIA)
}

/** The CONNECT target of each intercepted TLS socket. */
const targets = new WeakMap<object, Authority>()
/** Response bytes a forwarded answer sent, and answers that were the proxy's own error. */
const sent = new WeakMap<ServerResponse, number>()
const failed = new WeakSet<ServerResponse>()

function endToEnd (headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = new Set(String(headers.connection ?? '').toLowerCase().split(',').map(s => s.trim()))
  const out: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k)) continue
    out[k] = v
  }
  return out
}

function sendError (res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ error: message })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-cache': 'MISS' })
  res.end(body)
}

/** Answers a CONNECT that will not be tunnelled, and closes the connection. */
function refuse (socket: Socket, err: ProxyRefusedError): void {
  const reason = err.status === 400
    ? 'Bad Request'
    : err.status === 403
    ? 'Forbidden'
    : err.status === 504
    ? 'Gateway Timeout'
    : 'Bad Gateway'
  const body = JSON.stringify({ error: err.message })
  socket.end(
    `HTTP/1.1 ${err.status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${
      Buffer.byteLength(body)
    }\r\nconnection: close\r\n\r\n${body}`
  )
}
