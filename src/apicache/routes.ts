import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import type { Stats } from '../metrics/stats.js'
import { clientLeft } from '../http/client-left.js'
import type { ApiPassUpstreams, ApiUpstream } from '../upstream/api-client.js'
import { endToEnd, ifNoneMatchMatches, rewriteUpstreamUrls, type HeaderMap } from './headers.js'
import type { ApiResolver } from './resolver.js'
import { discardAnswer, type ApiCacheAnswer } from './answer.js'
import { cacheDateHeader } from '../http/cache-date.js'

export interface ApiRoutesInit {
  client: ApiPassUpstreams
  resolver: ApiResolver
  stats: Stats
  log: Logger
}

/** Where an API request goes, and the prefix under which the client reached it. */
interface Route {
  upstream: ApiUpstream
  /** Path and query string at the upstream. */
  path: string
  /** `<scheme>://<host><prefix>` as the client used it: upstream URLs in answers become this. */
  sidecarBase: string
}

/**
 * The upstream that GitHub Enterprise Server's URL layout (`/api/v3/<path>`, `/api/graphql`)
 * stands for. Clients that only know github.com or a GHES host (gh with GH_HOST) can then use
 * the sidecar as that host.
 */
const ENTERPRISE_UPSTREAM = 'github'

/** Request headers that are ours to set, or that would make the upstream answer differently per hop. */
const NOT_FORWARDED = [
  'host',
  'accept-encoding',
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
  'content-length'
]

/**
 * `/<name>/<path>` → `<upstream>/<path>` (and the GitHub Enterprise layout for `github`):
 * GET and HEAD through the ApiResolver's cache, anything else streamed through untouched.
 * Upstream URLs in `Link`/`Location` come back pointing at the sidecar as the client called it.
 */
export class ApiRoutes {
  constructor (private readonly init: ApiRoutesInit) {}

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const route = this.route(req, url)
    if (route === undefined) return false
    const { upstream, path, sidecarBase } = route
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        await this.pass(req, res, upstream, path, sidecarBase)
        return true
      }
      const request = { upstream, path, headers: endToEnd(req.headers, NOT_FORWARDED) }
      // The request upstream stops when every client that shares it has left.
      const answer = this.init.resolver.hit(request) ?? await this.init.resolver.get(request, { signal: clientLeft(res) })
      this.init.stats.inc(answer.cache === 'MISS' ? 'misses' : 'hits')
      await this.send(req, res, answer, upstream, sidecarBase)
    } catch (err) {
      this.init.stats.inc('errors')
      this.init.log.warn({ upstream: upstream.name, path: url.pathname, err: (err as Error).message }, 'API request failed')
      if (!res.headersSent) {
        const body = JSON.stringify({ message: `p2p-cache: upstream ${upstream.name} failed: ${(err as Error).message}` })
        res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-cache': 'MISS' })
        res.end(body)
      } else {
        res.destroy()
      }
    }
    return true
  }

  /**
   * `/<name>/<path>` for any upstream, and the GitHub Enterprise layout for the one named
   * `github`. Anything else (including other `/api/...` paths) is not ours: it ends as a 404.
   */
  private route (req: IncomingMessage, url: URL): Route | undefined {
    const origin = `${clientScheme(req)}://${req.headers.host ?? '127.0.0.1'}`
    const enterprise = enterprisePath(url.pathname)
    if (enterprise !== undefined) {
      const upstream = this.init.client.upstream(ENTERPRISE_UPSTREAM)
      // Rewritten links stay in the layout the client uses: gh follows `Link: rel="next"` as
      // given. (An upstream `/graphql` URL becomes `/api/v3/graphql`, which also lands here.)
      return upstream === undefined ? undefined : { upstream, path: `${enterprise}${url.search}`, sidecarBase: `${origin}/api/v3` }
    }
    const m = /^\/([^/]+)(\/.*)?$/.exec(url.pathname)
    const upstream = m === null ? undefined : this.init.client.upstream(m[1] ?? '')
    if (upstream === undefined) return undefined
    return { upstream, path: `${m?.[2] ?? '/'}${url.search}`, sidecarBase: `${origin}/${upstream.name}` }
  }

  /** Anything but GET/HEAD: streamed through, nothing stored. */
  private async pass (req: IncomingMessage, res: ServerResponse, upstream: ApiUpstream, path: string, sidecarBase: string): Promise<void> {
    // The upstream request ends if the client hangs up before its answer was sent.
    const up = await this.init.client.pass(req, upstream, path, endToEnd(req.headers, ['host', 'accept-encoding']), {
      signal: clientLeft(res)
    })
    res.writeHead(
      up.statusCode,
      this.clientHeaders(endToEnd(up.headers), upstream, sidecarBase, { 'x-cache': 'PASS', 'x-cache-source': upstream.name })
    )
    await pipeline(up.body, res)
  }

  /**
   * `answer` to the client: a 304 when its own If-None-Match matches, the body unless HEAD. A
   * streamed body (larger than CACHE_API_MAX_BODY) is piped through with the upstream's
   * Content-Length if it gave one, and destroyed when it is not sent.
   * @throws the stream's error once the headers are sent (the caller then destroys `res`)
   */
  private async send (
    req: IncomingMessage,
    res: ServerResponse,
    answer: ApiCacheAnswer,
    upstream: ApiUpstream,
    sidecarBase: string
  ): Promise<void> {
    const { body } = answer
    const headers = this.clientHeaders(answer.headers, upstream, sidecarBase, {
      'x-cache': answer.cache,
      'x-cache-source': answer.cache === 'HIT' ? 'local' : answer.peer ?? upstream.name,
      ...cacheDateHeader(answer.cache, answer.storedAt)
    })
    const etag = answer.headers.etag
    const ifNoneMatch = req.headers['if-none-match']
    if (answer.status === 200 && etag !== undefined && ifNoneMatch !== undefined && ifNoneMatchMatches(ifNoneMatch, etag)) {
      discardAnswer(answer)
      res.writeHead(304, headers)
      res.end()
      return
    }
    if (!Buffer.isBuffer(body)) {
      const length = answer.headers['content-length']
      if (length !== undefined) headers['content-length'] = length
      res.writeHead(answer.status, headers)
      if (req.method === 'HEAD') {
        body.destroy()
        res.end()
        return
      }
      let bytes = 0
      await pipeline(body, async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          bytes += chunk.byteLength
          yield chunk
        }
      }, res)
      this.init.stats.inc('bytes_served', bytes)
      return
    }
    headers['content-length'] = String(body.byteLength)
    res.writeHead(answer.status, headers)
    res.end(req.method === 'HEAD' ? undefined : body)
    if (req.method !== 'HEAD') this.init.stats.inc('bytes_served', body.byteLength)
  }

  /**
   * `headers` as the client gets them, with `extra`: no Content-Length (the caller sets its
   * own), upstream URLs in Link/Location/Content-Location pointing at the sidecar. Built in one
   * pass into a fresh object (this runs for every hit).
   */
  private clientHeaders (headers: HeaderMap, upstream: ApiUpstream, sidecarBase: string, extra: HeaderMap = {}): HeaderMap {
    const out: HeaderMap = {}
    for (const name in headers) {
      const value = headers[name] as string
      if (name === 'content-length') continue
      out[name] = URL_HEADERS.has(name) ? rewriteUpstreamUrls(value, upstream.base, sidecarBase) : value
    }
    for (const name in extra) out[name] = extra[name] as string
    return out
  }
}

/** Response headers that may carry an upstream URL. */
const URL_HEADERS = new Set(['link', 'location', 'content-location'])

/**
 * The upstream path of a GitHub Enterprise Server URL: `/api/v3/<path>` is REST `/<path>`,
 * `/api/graphql` is `/graphql` (api.github.com has both at its root). Undefined: not that layout.
 */
function enterprisePath (pathname: string): string | undefined {
  if (pathname === '/api/graphql') return '/graphql'
  if (pathname === '/api/v3') return '/'
  if (pathname.startsWith('/api/v3/')) return pathname.slice('/api/v3'.length)
  return undefined
}

/** How the client reached us: links we hand back must use the same scheme (gh only speaks HTTPS). */
function clientScheme (req: IncomingMessage): 'http' | 'https' {
  return (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http'
}
