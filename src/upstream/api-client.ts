import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { AbortOptions } from '@libp2p/interface'
import PQueue from 'p-queue'
import { Agent, request, type Dispatcher } from 'undici'
import { trustOptions } from './trust.js'
import type { Upstream } from './upstream.js'
import { contentLength } from '../http/fields.js'

/** Header names to one string each, as undici and node:http give them. */
export type RawHeaders = Record<string, string | string[] | undefined>

/** An API upstream with its request queue. */
export interface ApiUpstream extends Upstream {
  /** The URL without a trailing slash: `<base><path>` is the target. */
  base: string
  queue: PQueue
}

/** A whole (buffered) upstream answer. */
export interface UpstreamAnswer {
  status: number
  headers: RawHeaders
  body: Buffer
  /** Never set: see OversizeAnswer. */
  oversize?: undefined
}

/**
 * An upstream answer whose body is longer than the caller's `maxBytes` (ApiGetOptions): it was
 * not read whole. The caller reads `body` (to pass it on) or destroys it (which ends the
 * upstream request).
 */
export interface OversizeAnswer {
  status: number
  headers: RawHeaders
  oversize: true
  /** The whole body from its first byte: what was read before it proved too long, then the rest as it arrives. */
  body: Readable
}

/** What `ApiUpstreams.get` resolves with. */
export type ApiGetAnswer = UpstreamAnswer | OversizeAnswer

/** How much of an answer's body `ApiUpstreams.get` reads into memory; `signal` aborts the request. */
export interface ApiGetOptions extends AbortOptions {
  /**
   * Bytes of body read into memory at most: a longer body (or one whose `Content-Length` says
   * so) comes back as an OversizeAnswer, read no further. Default: no bound.
   */
  maxBytes?: number
}

/** An answer whose body is still to be read (a pass-through's). */
export interface PassedAnswer {
  statusCode: number
  headers: RawHeaders
  body: Readable
}

/**
 * What the API cache asks of its upstreams: ApiClient over HTTP, unit tests with an in-memory
 * fake (test/unit/fakes/api-upstream.ts).
 */
export interface ApiUpstreams {
  /** The configured upstream named `name` (CACHE_API_UPSTREAMS), if any. */
  upstream: (name: string) => ApiUpstream | undefined
  /**
   * GET `<upstream><path>` with `headers`, the body read whole up to `options.maxBytes` (past
   * it: an OversizeAnswer); `options.signal` aborts it.
   * @throws connection and timeout errors, AbortError
   */
  get: (
    upstream: ApiUpstream,
    path: string,
    headers: Record<string, string>,
    options?: ApiGetOptions
  ) => Promise<ApiGetAnswer>
}

/** ApiUpstreams that also stream any other method through (what ApiRoutes needs). */
export interface ApiPassUpstreams extends ApiUpstreams {
  /**
   * `req` (its body streamed) to `<upstream><path>` with `headers`; the answer's body is the
   * caller's to read. `options.signal` aborts the request (and the answer's body).
   */
  pass: (
    req: IncomingMessage,
    upstream: ApiUpstream,
    path: string,
    headers: Record<string, string>,
    options?: AbortOptions
  ) => Promise<PassedAnswer>
}

export interface ApiClientInit {
  upstreams: Upstream[]
  /** Requests in flight to one upstream (CACHE_API_CONCURRENCY); more wait in its queue. */
  concurrency: number
  /** Connect, response headers and body idle timeout, in ms (CACHE_UPSTREAM_TIMEOUT). */
  timeoutMs: number
  /** Every answer's `X-RateLimit-Remaining`, with the `Authorization` that was spent. */
  onRateLimit?: (upstream: string, authorization: string | undefined, remaining: number) => void
  /** Extra CA certificates (PEM) trusted besides the system roots (CACHE_UPSTREAM_CA_FILE). */
  ca?: string[] | undefined
}

/**
 * The HTTP client of the API upstreams (`CACHE_API_UPSTREAMS`): one undici agent, and a queue
 * per upstream so a burst of misses doesn't open hundreds of connections to it.
 */
export class ApiClient implements ApiPassUpstreams {
  private readonly byName: Map<string, ApiUpstream>
  private readonly agent: Dispatcher

  constructor (private readonly init: ApiClientInit) {
    this.byName = new Map(
      init.upstreams.map(
        u => [u.name, { ...u, queue: new PQueue({ concurrency: init.concurrency }), base: u.url.href.replace(/\/+$/, '') }]
      )
    )
    this.agent = new Agent({
      headersTimeout: init.timeoutMs,
      bodyTimeout: init.timeoutMs,
      connect: { timeout: init.timeoutMs, ...trustOptions(init.ca).connect }
    })
  }

  upstream (name: string): ApiUpstream | undefined {
    return this.byName.get(name)
  }

  /**
   * GET `<upstream><path>` with `headers` (`host` is set here). Waits its turn in the
   * upstream's queue; `signal` aborts the wait or the request. The body is read whole when it
   * is at most `options.maxBytes` long; a longer one is an OversizeAnswer whose body is the
   * caller's to read or destroy. Its queue slot is freed when it is handed over, not when it
   * is read: the caller may pass it on at a client's pace (a pass-through takes no slot either).
   * @throws undici errors (connection, timeout) and AbortError
   */
  async get (
    upstream: ApiUpstream,
    path: string,
    headers: Record<string, string>,
    options: ApiGetOptions = {}
  ): Promise<ApiGetAnswer> {
    const { signal } = options
    return await upstream.queue.add(async (): Promise<ApiGetAnswer> => {
      const res = await request(`${upstream.base}${path}`, {
        method: 'GET',
        headers: { ...headers, host: upstream.url.host },
        dispatcher: this.agent,
        signal
      })
      const body = await readIfWithin(res.body, res.headers, options.maxBytes ?? Infinity)
      this.noteRateLimit(upstream, headers.authorization, res.headers)
      return body === undefined
        ? { status: res.statusCode, headers: res.headers, oversize: true, body: res.body }
        : { status: res.statusCode, headers: res.headers, body }
    }, { signal }) as ApiGetAnswer
  }

  /**
   * Any other method: `req` (its body streamed) to `<upstream><path>` with `headers`; the
   * answer's body is the caller's to read. Not queued: writes are not coalesced or cached.
   * `options.signal` aborts the request, and the answer's body once it is handed over.
   * @throws undici errors (connection, timeout) and AbortError
   */
  async pass (
    req: IncomingMessage,
    upstream: ApiUpstream,
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<Dispatcher.ResponseData> {
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    const res = await request(`${upstream.base}${path}`, {
      method: req.method as Dispatcher.HttpMethod,
      headers: { ...headers, host: upstream.url.host },
      body: hasBody ? req : null,
      dispatcher: this.agent,
      signal: options.signal
    })
    this.noteRateLimit(upstream, headers.authorization, res.headers)
    return res
  }

  async close (): Promise<void> {
    await this.agent.close()
  }

  private noteRateLimit (upstream: ApiUpstream, authorization: string | undefined, headers: RawHeaders): void {
    const remaining = headers['x-ratelimit-remaining']
    if (typeof remaining === 'string' && /^\d+$/.test(remaining)) this.init.onRateLimit?.(upstream.name, authorization, Number(remaining))
  }
}

/**
 * `body` (of an answer with `headers`) read whole when it is at most `maxBytes` long.
 * Undefined: it is longer (its `Content-Length` says so, and then nothing is read, or more than
 * `maxBytes` arrived); what was read is put back in front of the rest, so `body` still holds it
 * all, paused. (undici fails a body whose length differs from its Content-Length, a 304's too.)
 * @throws the body's error (the connection broke, the body timed out, the request was aborted)
 */
async function readIfWithin (body: Readable, headers: RawHeaders, maxBytes: number): Promise<Buffer | undefined> {
  const declared = contentLength(headers['content-length'])
  if (declared !== undefined && declared > maxBytes) {
    body.on('error', ignore)
    return undefined
  }
  return await new Promise<Buffer | undefined>((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    const stop = (): void => {
      body.off('data', onData)
      body.off('end', onEnd)
      body.off('error', onError)
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      bytes += chunk.byteLength
      if (bytes <= maxBytes) return
      stop()
      // Paused with what was read back in front: whoever passes the body on gets it from byte 0.
      body.pause()
      body.unshift(Buffer.concat(chunks, bytes))
      // Until the caller listens, a connection that breaks must not be an uncaught 'error'.
      body.on('error', ignore)
      resolve(undefined)
    }
    const onEnd = (): void => {
      stop()
      resolve(Buffer.concat(chunks, bytes))
    }
    const onError = (err: Error): void => {
      stop()
      reject(err)
    }
    body.on('data', onData)
    body.on('end', onEnd)
    body.on('error', onError)
  })
}

/** An error listener that leaves the error to the body's reader (see readIfWithin). */
function ignore (): void {}
