import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import PQueue from 'p-queue'
import { Agent, request, type Dispatcher } from 'undici'
import { trustOptions } from './trust.js'
import type { Upstream } from '../config/options.js'

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
   * GET `<upstream><path>` with `headers`, the body read whole; `signal` aborts it.
   * @throws connection and timeout errors, AbortError
   */
  get: (upstream: ApiUpstream, path: string, headers: Record<string, string>, signal: AbortSignal) => Promise<UpstreamAnswer>
}

/** ApiUpstreams that also stream any other method through (what ApiRoutes needs). */
export interface ApiPassUpstreams extends ApiUpstreams {
  /** `req` (its body streamed) to `<upstream><path>` with `headers`; the answer's body is the caller's to read. */
  pass: (req: IncomingMessage, upstream: ApiUpstream, path: string, headers: Record<string, string>) => Promise<PassedAnswer>
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
    this.byName = new Map(init.upstreams.map(u => [u.name, { ...u, queue: new PQueue({ concurrency: init.concurrency }), base: u.url.href.replace(/\/+$/, '') }]))
    this.agent = new Agent({ headersTimeout: init.timeoutMs, bodyTimeout: init.timeoutMs, connect: { timeout: init.timeoutMs, ...trustOptions(init.ca).connect } })
  }

  upstream (name: string): ApiUpstream | undefined {
    return this.byName.get(name)
  }

  /**
   * GET `<upstream><path>` with `headers` (`host` is set here), the body read whole. Waits
   * its turn in the upstream's queue; `signal` aborts the wait or the request.
   * @throws undici errors (connection, timeout) and AbortError
   */
  async get (upstream: ApiUpstream, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamAnswer> {
    return await upstream.queue.add(async () => {
      const res = await request(`${upstream.base}${path}`, { method: 'GET', headers: { ...headers, host: upstream.url.host }, dispatcher: this.agent, signal })
      const chunks: Buffer[] = []
      for await (const chunk of res.body) chunks.push(chunk as Buffer)
      this.noteRateLimit(upstream, headers.authorization, res.headers)
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }
    }, { signal }) as UpstreamAnswer
  }

  /**
   * Any other method: `req` (its body streamed) to `<upstream><path>` with `headers`; the
   * answer's body is the caller's to read. Not queued: writes are not coalesced or cached.
   */
  async pass (req: IncomingMessage, upstream: ApiUpstream, path: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    const res = await request(`${upstream.base}${path}`, {
      method: req.method as Dispatcher.HttpMethod,
      headers: { ...headers, host: upstream.url.host },
      body: hasBody ? req : null,
      dispatcher: this.agent
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
