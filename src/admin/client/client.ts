import type { AbortOptions } from '@libp2p/interface'
import type { Readable } from 'node:stream'
import { request, type Dispatcher } from 'undici'
import type { P2pInfo } from '../admin-routes.js'
import type { StatsSnapshot } from '../../metrics/stats.js'
import { discard, readBounded } from '../../io/bounded-body.js'
import { DEFAULT_TIMEOUT_MS, GC_TIMEOUT_MS, MAX_ANSWER_BYTES, MAX_ERROR_BYTES } from './constants.js'
import { SidecarBadAnswerError, SidecarStatusError, SidecarUnreachableError } from './errors.js'
import { contentLength } from '../../http/fields.js'

export interface SidecarClientInit {
  /**
   * CACHE_ADMIN_TOKEN, sent as `Authorization: Bearer <token>` to the admin API (/api/cache and
   * below): the sidecar needs it from any host but its own. '' or absent: none is sent.
   */
  adminToken?: string
  /** Budget of one request, headers and body together, in ms (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number
  /** The connection pool to use (e.g. an Agent sized for warm's concurrency); default undici's global one. */
  dispatcher?: Dispatcher
}

/** One request beyond its path. */
export interface SidecarRequest {
  /** Default GET. */
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE'
  headers?: Record<string, string>
  /** Query parameters, set on the URL (encoded here). */
  query?: Record<string, string>
  /** This request's budget instead of the client's, in ms. */
  timeoutMs?: number
}

/** An answer whose body has not been read: the caller reads it to the end or discards it. */
export interface SidecarStream {
  status: number
  headers: Record<string, string | string[] | undefined>
  /**
   * The body, bytes as they come. It is bound to the request's budget and the caller's signal:
   * when either ends first, reading throws the abort's reason (a TimeoutError for the budget).
   */
  body: Readable
  /** The first value of header `name` (lower case), or undefined. */
  header: (name: string) => string | undefined
}

/** The status of an endpoint whose body does not matter (/healthz, /readyz, /v2/). */
export interface SidecarStatus {
  status: number
  /** The sidecar's Date header (its clock), when it sent one. */
  date: string | undefined
}

/** What an admin call that removes blobs did (POST /api/cache/gc, DELETE /api/cache). */
export interface StoreRemoval {
  /** Blobs removed. */
  removed: number
  /** The store's size afterwards, in bytes. */
  currentSize: number
}

/**
 * A client of a running sidecar's HTTP API, for the commands that talk to one (stats, gc,
 * healthcheck, id, ca, warm). Every request has one budget (`timeoutMs`, headers and body
 * together; a caller's signal can end it sooner) and every answer read into memory is bounded
 * (MAX_ANSWER_BYTES). Failures are typed:
 * - SidecarUnreachableError: no complete answer (refused, reset, timed out, unusable URL)
 * - SidecarStatusError: an answer other than 2xx, with the sidecar's own message
 * - SidecarBadAnswerError: a 2xx answer that is too large or not what the endpoint sends
 * An abort of the caller's own signal is rethrown as its reason, not turned into one of these.
 */
export class SidecarClient {
  /** Budget of one request, in ms. */
  readonly timeoutMs: number
  private readonly adminToken: string
  private readonly dispatcher: Dispatcher | undefined

  /** @param url - the sidecar's base URL, e.g. http://127.0.0.1:9080; checked at the first request (an unusable one is SidecarUnreachableError) */
  constructor (readonly url: string, init: SidecarClientInit = {}) {
    this.timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.adminToken = init.adminToken ?? ''
    this.dispatcher = init.dispatcher
  }

  /**
   * Sends a request and hands back the answer, any status, with its body unread: for bodies
   * that must not be held in memory (warm streams blobs through).
   * @throws SidecarUnreachableError when no answer comes
   */
  async stream (path: string, req: SidecarRequest = {}, options: AbortOptions = {}): Promise<SidecarStream> {
    const signal = AbortSignal.timeout(req.timeoutMs ?? this.timeoutMs)
    try {
      const url = this.urlOf(path, req.query)
      const res = await request(url, {
        method: req.method ?? 'GET',
        headers: { ...req.headers, ...this.authorization(url) },
        signal: options.signal === undefined ? signal : AbortSignal.any([signal, options.signal]),
        ...(this.dispatcher !== undefined ? { dispatcher: this.dispatcher } : {})
      })
      const headers = res.headers
      return {
        status: res.statusCode,
        headers,
        body: res.body,
        header: name => {
          const v = headers[name]
          return Array.isArray(v) ? v[0] : v
        }
      }
    } catch (err) {
      throw this.failure(err, options)
    }
  }

  /**
   * The status (and Date) of `path`, any status; the body is read, up to MAX_ANSWER_BYTES, and
   * dropped, so that the connection ends cleanly.
   * @throws SidecarUnreachableError when no answer comes
   */
  async probe (path: string, req: SidecarRequest = {}, options: AbortOptions = {}): Promise<SidecarStatus> {
    const res = await this.stream(path, req, options)
    // The status is the answer: a body that fails or runs over changes nothing.
    await readBounded(res.body, MAX_ANSWER_BYTES).catch(() => undefined)
    return { status: res.status, date: res.header('date') }
  }

  /**
   * The JSON of a 2xx answer, at most MAX_ANSWER_BYTES. `T` is the endpoint's shape as the
   * sidecar sends it; it is not checked here.
   * @throws SidecarUnreachableError, SidecarStatusError, SidecarBadAnswerError (too large, not JSON)
   */
  async json<T> (path: string, req: SidecarRequest = {}, options: AbortOptions = {}): Promise<T> {
    const body = await this.read(path, req, options)
    try {
      return JSON.parse(body.toString('utf8')) as T
    } catch (err) {
      throw new SidecarBadAnswerError(this.url, describe(path, req), `the answer is not JSON (${(err as Error).message})`)
    }
  }

  /**
   * The text (UTF-8) of a 2xx answer, at most MAX_ANSWER_BYTES.
   * @throws SidecarUnreachableError, SidecarStatusError, SidecarBadAnswerError (too large)
   */
  async text (path: string, req: SidecarRequest = {}, options: AbortOptions = {}): Promise<string> {
    return (await this.read(path, req, options)).toString('utf8')
  }

  /** GET /healthz: 200 while the process serves. @throws SidecarUnreachableError */
  async health (options: AbortOptions = {}): Promise<SidecarStatus> {
    return await this.probe('/healthz', {}, options)
  }

  /** GET /readyz: 200 once the store is open and the server listens, 503 before. @throws SidecarUnreachableError */
  async ready (options: AbortOptions = {}): Promise<SidecarStatus> {
    return await this.probe('/readyz', {}, options)
  }

  /** GET /api/cache/stats: the counters `p2p-cache stats` prints. @throws as json() */
  async stats (options: AbortOptions = {}): Promise<StatsSnapshot> {
    return await this.json<StatsSnapshot>('/api/cache/stats', {}, options)
  }

  /** GET /api/p2p: this node in the swarm, or undefined when its P2P layer is off (404). @throws as json() */
  async p2pInfo (options: AbortOptions = {}): Promise<P2pInfo | undefined> {
    return await absentOn404(this.json<P2pInfo>('/api/p2p', {}, options))
  }

  /**
   * GET /ca.crt: the forward proxy's CA certificate (PEM), or undefined when the proxy is off (404).
   * @throws as text(), and SidecarBadAnswerError for a 200 that holds no certificate
   */
  async caCertificate (options: AbortOptions = {}): Promise<string | undefined> {
    const pem = await absentOn404(this.text('/ca.crt', {}, options))
    if (pem !== undefined && !pem.includes('BEGIN CERTIFICATE')) {
      throw new SidecarBadAnswerError(this.url, 'GET /ca.crt', 'the answer is not a PEM certificate')
    }
    return pem
  }

  /**
   * POST /api/cache/gc (admin): applies the prune policy now; the budget is GC_TIMEOUT_MS, as
   * the sidecar answers once it has pruned.
   * @throws as json(); SidecarStatusError 403 from another host without the admin token
   */
  async gc (options: AbortOptions = {}): Promise<StoreRemoval> {
    return removal(await this.json<RemovalBody>('/api/cache/gc', { method: 'POST', timeoutMs: GC_TIMEOUT_MS }, options))
  }

  /** DELETE /api/cache (admin): empties the store. @throws as gc() */
  async clear (options: AbortOptions = {}): Promise<StoreRemoval> {
    return removal(await this.json<RemovalBody>('/api/cache', { method: 'DELETE' }, options))
  }

  /**
   * PUT /api/cache/pins/<digest> (admin): keeps the blob from eviction.
   * @param digest - sha256:<64 hex>
   * @throws as json(); SidecarStatusError 404 when the store lacks it, 400 for a malformed digest
   */
  async pin (digest: string, options: AbortOptions = {}): Promise<void> {
    await this.json<unknown>(`/api/cache/pins/${encodeURIComponent(digest)}`, { method: 'PUT' }, options)
  }

  /** DELETE /api/cache/pins/<digest> (admin): lets the blob be evicted again. @throws as pin() */
  async unpin (digest: string, options: AbortOptions = {}): Promise<void> {
    await this.json<unknown>(`/api/cache/pins/${encodeURIComponent(digest)}`, { method: 'DELETE' }, options)
  }

  /** The body of a 2xx answer, at most MAX_ANSWER_BYTES; anything else throws. */
  private async read (path: string, req: SidecarRequest, options: AbortOptions): Promise<Buffer> {
    const res = await this.stream(path, req, options)
    const ok = res.status >= 200 && res.status <= 299
    const limit = ok ? MAX_ANSWER_BYTES : MAX_ERROR_BYTES
    let body: Buffer | undefined
    if ((contentLength(res.header('content-length')) ?? 0) > limit) {
      // Declared above the bound: refused before any byte is read.
      discard(res.body)
    } else {
      try {
        body = await readBounded(res.body, limit)
      } catch (err) {
        // An error answer that breaks off still has its status: that is what to report.
        if (ok) throw this.failure(err, options)
      }
    }
    if (!ok) throw new SidecarStatusError(this.url, describe(path, req), res.status, errorDetail(body))
    if (body === undefined) {
      throw new SidecarBadAnswerError(this.url, describe(path, req), `the answer is larger than ${MAX_ANSWER_BYTES} bytes`)
    }
    return body
  }

  /** A URL on the sidecar; throws for a base URL that is not one. */
  private urlOf (path: string, query: Record<string, string> | undefined): URL {
    const url = new URL(path, this.url)
    for (const [name, value] of Object.entries(query ?? {})) url.searchParams.set(name, value)
    return url
  }

  /** The admin token goes to the admin API only: the sidecar checks it there, nothing else needs it. */
  private authorization (url: URL): Record<string, string> {
    const admin = url.pathname === '/api/cache' || url.pathname.startsWith('/api/cache/')
    return admin && this.adminToken !== '' ? { authorization: `Bearer ${this.adminToken}` } : {}
  }

  /** What a failed exchange is: the caller's own abort as is, anything else the sidecar not answering. */
  private failure (err: unknown, options: AbortOptions): unknown {
    if (options.signal?.aborted === true) return options.signal.reason
    return err instanceof SidecarUnreachableError ? err : new SidecarUnreachableError(this.url, err)
  }
}

/** What POST /api/cache/gc and DELETE /api/cache answer. */
interface RemovalBody {
  removed?: unknown
  current_size?: unknown
}

function removal (body: RemovalBody): StoreRemoval {
  return {
    removed: typeof body.removed === 'number' ? body.removed : 0,
    currentSize: typeof body.current_size === 'number' ? body.current_size : 0
  }
}

/** The answer, or undefined when the sidecar says 404 (the feature is off there). */
async function absentOn404<T> (answer: Promise<T>): Promise<T | undefined> {
  try {
    return await answer
  } catch (err) {
    if (err instanceof SidecarStatusError && err.status === 404) return undefined
    throw err
  }
}

/** "METHOD /path", for messages. */
function describe (path: string, req: SidecarRequest): string {
  return `${req.method ?? 'GET'} ${path}`
}

/** The sidecar's message in an error answer: its JSON `error` (admin API) or first `errors[].message` (registry API), else the text. */
function errorDetail (body: Buffer | undefined): string | undefined {
  const text = body?.toString('utf8').trim() ?? ''
  if (text === '') return undefined
  try {
    const parsed = JSON.parse(text) as { error?: unknown, errors?: Array<{ message?: unknown }> }
    if (typeof parsed.error === 'string') return parsed.error
    const first = parsed.errors?.[0]?.message
    if (typeof first === 'string') return first
  } catch {
    // Not JSON (a proxy's page, a plain-text error): the text itself is the message.
  }
  return text.slice(0, 300)
}
