import type { AbortOptions } from '@libp2p/interface'
import { createHash } from 'node:crypto'
import type { IncomingMessage, RequestListener } from 'node:http'
import { Readable } from 'node:stream'
import PQueue from 'p-queue'
import type { ApiPassUpstreams, ApiUpstream, PassedAnswer, RawHeaders, UpstreamAnswer } from '../../../src/upstream/api-client.js'
import type { Clock } from '../../../src/clock/clock.js'
import { FakeClock } from './clock.js'

/** A resource the fake serves (a GET on its exact path and query). */
export interface FakeResource {
  /** The body; a function gets the request's Accept (a representation per media type). */
  body: string | Buffer | ((accept: string) => string | Buffer)
  /** Default 200. */
  status?: number
  /** Default GitHub's: `private, max-age=60, s-maxage=60` with a token, `public, ...` without. */
  cacheControl?: string
  /** Default `Accept, Authorization`. */
  vary?: string
  /** Whether a `Last-Modified` is sent (default true): GitHub sends none on listings. */
  lastModified?: boolean
  /** Whether an `ETag` is sent (default true). */
  etag?: boolean
  /** More response headers (`link`, `location`...). */
  headers?: Record<string, string>
}

/** One request the fake received. */
export interface FakeRequest {
  method: string
  path: string
  /** The token sent (`Bearer x` / `token x`), undefined when anonymous. */
  token: string | undefined
  headers: Record<string, string>
  status: number
  /** It carried If-None-Match or If-Modified-Since. */
  conditional: boolean
}

interface Repo {
  private: boolean
  readers: Set<string>
}
interface Stored extends FakeResource {
  modifiedAt: number
  version: number
}
interface Bucket {
  limit: number
  remaining: number
}

const RATE_LIMIT_ANON = 60
const RATE_LIMIT_TOKEN = 5000

/**
 * An in-memory api.github.com where it matters to a cache: token-specific weak ETags and
 * Last-Modified, 304 to a matching If-None-Match / If-Modified-Since that costs no rate limit,
 * `X-RateLimit-*` per token (60 anonymous, 5000 per token) that run out into 403s, secondary
 * limits (429 with Retry-After), GitHub's `Cache-Control`/`Vary`, refused tokens (401 "Bad
 * credentials") and private repositories that are a 404 to every token but their readers.
 * Implements ApiPassUpstreams, so it stands in for ApiClient; `handler` serves it over node:http.
 */
export class FakeApiUpstream implements ApiPassUpstreams {
  readonly api: ApiUpstream
  readonly clock: Clock
  readonly log: FakeRequest[] = []
  /** Requests whose signal aborted while they were held (see `hold`). */
  aborted = 0
  private readonly resources = new Map<string, Stored>()
  private readonly repos = new Map<string, Repo>()
  private readonly tokens = new Map<string, Bucket>()
  private readonly anon: Bucket = { limit: RATE_LIMIT_ANON, remaining: RATE_LIMIT_ANON }
  private readonly failures: Array<{ status: number, headers: Record<string, string>, body: string }> = []
  private readonly errors: Error[] = []
  private gate: { promise: Promise<void>, release: () => void } | undefined
  private readonly arrivals: Array<() => void> = []
  /** Requests waiting at the gate. */
  held = 0

  constructor (opts: { name?: string, base?: string, clock?: Clock } = {}) {
    const url = new URL(opts.base ?? 'https://api.github.com')
    this.api = { name: opts.name ?? 'github', url, base: url.href.replace(/\/+$/, ''), queue: new PQueue({ concurrency: 8 }) }
    this.clock = opts.clock ?? new FakeClock()
  }

  upstream (name: string): ApiUpstream | undefined {
    return name === this.api.name ? this.api : undefined
  }

  /** Accepts `token` (its own bucket of `limit` requests, default 5000). */
  token (token: string, limit = RATE_LIMIT_TOKEN): this {
    this.tokens.set(token, { limit, remaining: limit })
    return this
  }

  /** The token is refused from now on (revoked, or a job's GITHUB_TOKEN after the job). */
  revoke (token: string): void {
    this.tokens.delete(token)
  }

  /** Sets what is left of a token's (or, undefined, the anonymous) rate limit. */
  remaining (token: string | undefined, remaining: number): void {
    const bucket = token === undefined ? this.anon : this.tokens.get(token)
    if (bucket !== undefined) bucket.remaining = remaining
  }

  /**
   * A repository and its `/repos/{owner}/{repo}` resource. A private one is a 404 to anyone
   * but `readers` (tokens), for every path under it.
   */
  repo (fullName: string, opts: { private?: boolean, readers?: string[] } = {}): this {
    const isPrivate = opts.private ?? false
    this.repos.set(fullName.toLowerCase(), { private: isPrivate, readers: new Set(opts.readers ?? []) })
    this.resource(`/repos/${fullName}`, {
      body: JSON.stringify({ full_name: fullName, private: isPrivate, visibility: isPrivate ? 'private' : 'public' })
    })
    return this
  }

  /** Defines (or replaces: new ETag and Last-Modified) the resource at `path` (with its query). */
  resource (path: string, spec: FakeResource): this {
    const version = (this.resources.get(path)?.version ?? 0) + 1
    this.resources.set(path, { ...spec, modifiedAt: this.clock.now(), version })
    return this
  }

  /** The next answers (one per call) are this failure, whatever is asked: 5xx, 429... */
  failNext (status: number, headers: Record<string, string> = {}, body = `{"message":"fake failure ${status}"}`): this {
    this.failures.push({ status, headers, body })
    return this
  }

  /** The next `get` throws `err` (a connection refused, a timeout), as undici would. */
  throwNext (err: Error): this {
    this.errors.push(err)
    return this
  }

  /** A secondary rate limit (GitHub: 429 or 403 with Retry-After) on the next request. */
  secondaryLimitNext (retryAfterS: number, status: 403 | 429 = 429): this {
    return this.failNext(
      status,
      { 'retry-after': String(retryAfterS) },
      '{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}'
    )
  }

  /**
   * Requests from now on wait until `release` (aborting one through its signal counts in
   * `aborted`); `arrived` resolves once `n` are waiting.
   */
  hold (): { release: () => void, arrived: (n: number) => Promise<void> } {
    let release!: () => void
    const promise = new Promise<void>(resolve => {
      release = resolve
    })
    this.gate = { promise, release }
    return {
      release: () => {
        this.gate = undefined
        release()
      },
      arrived: async n => {
        while (this.held < n) await new Promise<void>(resolve => this.arrivals.push(resolve))
      }
    }
  }

  /** Requests made with `token` (undefined: anonymous), or all of them with no argument. */
  count (...token: [string | undefined] | []): number {
    return token.length === 0 ? this.log.length : this.log.filter(r => r.token === token[0]).length
  }

  /** The ETag `token` gets for `path` now (GitHub's are specific to the token and the Accept). */
  etagFor (path: string, token: string | undefined, accept = ''): string | undefined {
    const r = this.resources.get(path)
    return r === undefined ? undefined : etag(bodyOf(r, accept), token, accept)
  }

  async get (upstream: ApiUpstream, path: string, headers: Record<string, string>, options: AbortOptions = {}): Promise<UpstreamAnswer> {
    const signal = options.signal ?? new AbortController().signal
    if (upstream !== this.api) throw new Error(`fake upstream ${this.api.name} asked for ${upstream.name}`)
    signal.throwIfAborted()
    const err = this.errors.shift()
    if (err !== undefined) throw err
    if (this.gate !== undefined) {
      const gate = this.gate.promise
      this.held++
      for (const wake of this.arrivals.splice(0)) wake()
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = (): void => {
            this.aborted++
            reject(signal.reason as Error)
          }
          signal.addEventListener('abort', onAbort, { once: true })
          void gate.then(() => {
            signal.removeEventListener('abort', onAbort)
            resolve()
          })
        })
      } finally {
        this.held--
      }
    }
    return this.answer('GET', path, headers)
  }

  async pass (req: IncomingMessage, upstream: ApiUpstream, path: string, headers: Record<string, string>): Promise<PassedAnswer> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    const token = tokenOf(headers.authorization)
    this.log.push({ method: req.method ?? 'POST', path, token, headers, status: 201, conditional: false })
    const answer = JSON.stringify({ method: req.method, path, received: body.toString('utf8'), url: `${upstream.base}${path}` })
    return {
      statusCode: 201,
      headers: {
        'content-type': 'application/json',
        location: `${upstream.base}${path}/1`,
        'content-length': String(Buffer.byteLength(answer))
      },
      body: Readable.from([Buffer.from(answer)])
    }
  }

  /** The fake over node:http (for ApiClient): GET answered as `get` does, the host header recorded. */
  get handler (): RequestListener {
    return (req, res) => {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v
      const a = this.answer(req.method ?? 'GET', req.url ?? '/', headers)
      res.writeHead(a.status, a.headers as Record<string, string>)
      res.end(req.method === 'HEAD' ? undefined : a.body)
    }
  }

  /** What api.github.com answers to `method path` with `headers`. */
  answer (method: string, path: string, headers: Record<string, string>): UpstreamAnswer {
    const token = tokenOf(headers.authorization)
    const conditional = headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined
    const done = (status: number, h: RawHeaders, body: Buffer | string): UpstreamAnswer => {
      this.log.push({ method, path, token, headers, status, conditional })
      const buf = Buffer.from(body)
      return {
        status,
        headers: { date: new Date(this.clock.now()).toUTCString(), 'content-length': String(buf.byteLength), ...h },
        body: buf
      }
    }
    const failure = this.failures.shift()
    if (failure !== undefined) return done(failure.status, { 'content-type': 'application/json', ...failure.headers }, failure.body)
    if (headers.authorization !== undefined && (token === undefined || !this.tokens.has(token))) {
      return done(
        401,
        { 'content-type': 'application/json' },
        '{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}'
      )
    }
    const bucket = token === undefined ? this.anon : this.tokens.get(token) as Bucket
    const limitHeaders = (): Record<string, string> => ({
      'x-ratelimit-limit': String(bucket.limit),
      'x-ratelimit-remaining': String(bucket.remaining),
      'x-ratelimit-used': String(bucket.limit - bucket.remaining),
      'x-ratelimit-reset': String(Math.floor(this.clock.now() / 1000) + 3600),
      'x-ratelimit-resource': 'core'
    })
    if (bucket.remaining <= 0) {
      return done(
        403,
        { 'content-type': 'application/json', ...limitHeaders() },
        '{"message":"API rate limit exceeded","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}'
      )
    }
    const accept = (headers.accept ?? '').trim()
    const resource = this.visible(path, token) ? this.resources.get(path) : undefined
    if (resource === undefined) {
      bucket.remaining--
      return done(
        404,
        { 'content-type': 'application/json', ...limitHeaders() },
        '{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}'
      )
    }
    const body = bodyOf(resource, accept)
    const tag = resource.etag === false ? undefined : etag(body, token, accept)
    const lastModified = resource.lastModified === false ? undefined : new Date(resource.modifiedAt).toUTCString()
    const cache: Record<string, string> = {
      'cache-control': resource.cacheControl ??
        (token === undefined ? 'public, max-age=60, s-maxage=60' : 'private, max-age=60, s-maxage=60'),
      vary: resource.vary ?? 'Accept, Authorization',
      ...(tag !== undefined ? { etag: tag } : {}),
      ...(lastModified !== undefined ? { 'last-modified': lastModified } : {})
    }
    const inm = headers['if-none-match']
    const ims = headers['if-modified-since']
    const notModified = inm !== undefined
      ? tag !== undefined && inm.split(',').some(t => t.trim().replace(/^W\//, '') === tag.replace(/^W\//, ''))
      : ims !== undefined && lastModified !== undefined && Date.parse(ims) >= Date.parse(lastModified)
    // GitHub: a 304 does not count against the rate limit.
    if (notModified && method === 'GET') return done(304, { ...cache, ...limitHeaders() }, '')
    bucket.remaining--
    return done(resource.status ?? 200, {
      'content-type': 'application/json; charset=utf-8',
      ...cache,
      ...limitHeaders(),
      ...resource.headers
    }, body)
  }

  /** Paths under a private repository exist only for its readers. */
  private visible (path: string, token: string | undefined): boolean {
    const m = /^\/repos\/([^/?]+)\/([^/?]+)/.exec(path)
    if (m === null) return true
    const repo = this.repos.get(`${m[1] ?? ''}/${m[2] ?? ''}`.toLowerCase())
    return repo === undefined || !repo.private || (token !== undefined && repo.readers.has(token))
  }
}

function tokenOf (authorization: string | undefined): string | undefined {
  const m = /^(?:bearer|token)\s+(\S+)$/i.exec(authorization?.trim() ?? '')
  return m?.[1]
}

function bodyOf (r: FakeResource, accept: string): Buffer {
  return Buffer.from(typeof r.body === 'function' ? r.body(accept) : r.body)
}

function etag (body: Buffer, token: string | undefined, accept: string): string {
  return `W/"${createHash('sha256').update(token ?? '').update('\0').update(accept).update('\0').update(body).digest('hex').slice(0, 32)}"`
}
