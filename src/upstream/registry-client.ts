import type { AbortOptions } from '@libp2p/interface'
import type { RegistryUpstream, UpstreamResponse } from './registry-upstream.js'
import { discard, readBounded, readLimited } from '../io/bounded-body.js'
import { Agent, request, type Dispatcher } from 'undici'
import { trustOptions } from './trust.js'
import type { LookupFunction } from 'node:net'
import type { Logger } from 'pino'
import type { Credential, Upstream } from './upstream.js'
import { parseChallenge, type Challenge } from './challenge.js'
import { UpstreamRateLimitedError, UpstreamStatusError, UpstreamUnavailableError } from './errors.js'
import { systemClock, type Clock } from '../clock/clock.js'

export interface RegistryClientInit {
  upstream: Upstream
  credential?: Credential
  timeoutMs: number
  log: Logger
  /** Docker Hub's `ratelimit-remaining` / `ratelimit-limit` (`<n>;w=<s>`), whenever an answer carries them. */
  onRateLimit?: (upstream: string, limit: RegistryRateLimit) => void
  /** Token expiry is computed on it (default: the system clock). */
  clock?: Clock
  /** Extra CA certificates (PEM) trusted besides the system roots (CACHE_UPSTREAM_CA_FILE). */
  ca?: string[] | undefined
  /** Name resolution for connections (the proxy's guard against link-local and its own ports); default dns.lookup. */
  lookup?: LookupFunction | undefined
}

/** What an upstream said of its pull rate limit (Docker Hub: pulls per `windowS` seconds). */
export interface RegistryRateLimit {
  remaining: number
  limit?: number
  windowS?: number
}

interface Token {
  value: string
  expiresAt: number
}

const MAX_REDIRECTS = 5
const USER_AGENT = 'p2p-cache/0.1 (+registry mirror)'
/**
 * Response bytes buffered before the upstream socket is paused: a blob body is written to disk
 * in batches, and a 64 KiB buffer (undici's default) stalls the upstream on every write.
 */
const BODY_HIGH_WATER = 1024 * 1024
/** Token lifetime when the token server does not say (distribution's documented default). */
const DEFAULT_TOKEN_TTL_S = 60
/** A token server's answer is a small JSON object (a JWT inside): past this, it is not one. */
const MAX_TOKEN_ANSWER_BYTES = 1024 * 1024

function header (headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

function flatHeaders (headers: Dispatcher.ResponseData['headers']): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const key of Object.keys(headers)) out[key] = header(headers, key)
  return out
}

/** `76;w=21600` (Docker Hub: count and window in seconds) → its parts; undefined when absent or malformed. */
function parseRateLimit (value: string | undefined): { n: number, windowS?: number } | undefined {
  const m = value === undefined ? null : /^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?/.exec(value)
  if (m === null) return undefined
  return m[2] !== undefined ? { n: Number(m[1]), windowS: Number(m[2]) } : { n: Number(m[1]) }
}

function basic (credential: Credential): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`
}

/**
 * Client of one upstream registry's pull API: Bearer token exchange from the
 * `WWW-Authenticate` challenge (anonymous or with credentials), Basic auth, redirects to blob
 * storage (credentials are not sent to another host), and typed failures.
 */
export class RegistryClient implements RegistryUpstream {
  readonly name: string
  readonly url: URL
  private readonly agent: Agent
  private readonly tokens = new Map<string, Token>()
  private readonly log: Logger
  private readonly clock: Clock
  /** Set once the upstream asked for Basic auth: later requests send it up front. */
  private basicPreferred = false

  constructor (private readonly init: RegistryClientInit) {
    this.name = init.upstream.name
    this.url = init.upstream.url
    this.log = init.log.child({ upstream: init.upstream.name })
    this.clock = init.clock ?? systemClock
    this.agent = new Agent({
      connectTimeout: init.timeoutMs,
      headersTimeout: init.timeoutMs,
      bodyTimeout: init.timeoutMs,
      connections: 32,
      connect: { ...trustOptions(init.ca).connect, ...(init.lookup !== undefined ? { lookup: init.lookup } : {}) }
    })
  }

  /**
   * Sends a pull-API request for `repo`, answering auth challenges and following redirects.
   * 2xx and the client's own statuses (404, 401...) are returned; network failures, 5xx and
   * 429 throw UpstreamUnavailableError.
   */
  async send (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    const scope = `repository:${repo}:pull`
    const base = this.init.upstream.url
    const url = new URL(`${base.origin}${base.pathname.replace(/\/+$/, '')}${path}`)
    let res = await this.exchange(method, url, { ...headers, ...this.cachedAuth(scope) }, options)
    if (res.statusCode === 401) {
      const challenge = parseChallenge(header(res.headers, 'www-authenticate'))
      await res.body.dump()
      const auth = challenge === undefined ? undefined : await this.answer(challenge, scope, options)
      if (auth !== undefined) res = await this.exchange(method, url, { ...headers, authorization: auth }, options)
      else res = await this.exchange(method, url, headers, options)
    }
    this.noteRateLimit(res.headers)
    return await availableOrThrow(this.name, `${method} ${path}`, {
      status: res.statusCode,
      headers: flatHeaders(res.headers),
      body: res.body
    })
  }

  /**
   * `method` on `path` (with its query) sent as a client sent it: `headers` are the client's own
   * (its Authorization, if any; none of ours, no token exchange). Redirects are followed, and
   * the Authorization is not sent on to another host (blob CDNs get presigned URLs). Every
   * status is returned, 5xx too: the forward proxy relays it.
   * @throws UpstreamUnavailableError when the upstream can't be reached, AbortError
   */
  async relay (
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    const base = this.init.upstream.url
    const res = await this.exchange(method, new URL(`${base.origin}${base.pathname.replace(/\/+$/, '')}${path}`), headers, options)
    return { status: res.statusCode, headers: flatHeaders(res.headers), body: res.body }
  }

  /** Like `send`, but any non-2xx becomes UpstreamStatusError (body read, for the client). */
  async sendOk (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    return await okOrThrow(this.name, method, await this.send(method, repo, path, headers, options))
  }

  async close (): Promise<void> {
    await this.agent.close()
  }

  private noteRateLimit (headers: Dispatcher.ResponseData['headers']): void {
    const remaining = parseRateLimit(header(headers, 'ratelimit-remaining'))
    if (remaining === undefined || this.init.onRateLimit === undefined) return
    const limit = parseRateLimit(header(headers, 'ratelimit-limit'))
    const windowS = remaining.windowS ?? limit?.windowS
    this.init.onRateLimit(this.name, {
      remaining: remaining.n,
      ...(limit !== undefined ? { limit: limit.n } : {}),
      ...(windowS !== undefined ? { windowS } : {})
    })
  }

  private cachedAuth (scope: string): Record<string, string> {
    for (const [key, token] of this.tokens) {
      if (key.endsWith(`|${scope}`) && token.expiresAt > this.clock.now()) return { authorization: `Bearer ${token.value}` }
    }
    if (this.init.credential !== undefined && this.tokens.size === 0 && this.basicPreferred) {
      return { authorization: basic(this.init.credential) }
    }
    return {}
  }

  private async answer (challenge: Challenge, scope: string, options: AbortOptions = {}): Promise<string | undefined> {
    if (challenge.scheme === 'basic') {
      if (this.init.credential === undefined) return undefined
      this.basicPreferred = true
      return basic(this.init.credential)
    }
    if (challenge.scheme !== 'bearer' || challenge.params.realm === undefined) return undefined
    const realm = new URL(challenge.params.realm)
    const wanted = challenge.params.scope ?? scope
    if (challenge.params.service !== undefined) realm.searchParams.set('service', challenge.params.service)
    for (const s of wanted.split(' ')) realm.searchParams.append('scope', s)
    const headers: Record<string, string> = {}
    if (this.init.credential !== undefined) headers.authorization = basic(this.init.credential)
    const res = await this.exchange('GET', realm, headers, options)
    // Bounded: the token server is the upstream's, not ours.
    const text = (await readBounded(res.body, MAX_TOKEN_ANSWER_BYTES))?.toString('utf8') ?? ''
    if (res.statusCode !== 200) {
      this.log.warn({ status: res.statusCode, realm: realm.origin + realm.pathname }, 'token request refused')
      if (res.statusCode === 429) {
        throw new UpstreamRateLimitedError(this.name, 'token server answered 429', header(res.headers, 'retry-after'))
      }
      if (res.statusCode >= 500) throw new UpstreamUnavailableError(this.name, `token server answered ${res.statusCode}`, res.statusCode)
      return undefined
    }
    let parsed: { token?: string, access_token?: string, expires_in?: number }
    try {
      parsed = JSON.parse(text) as typeof parsed
    } catch {
      parsed = {}
    }
    const value = parsed.token ?? parsed.access_token
    if (value === undefined) return undefined
    // Renew a little before expiry, but never keep a short-lived token past its life.
    const lifetime = parsed.expires_in ?? DEFAULT_TOKEN_TTL_S
    const ttl = Math.max(0, lifetime - Math.min(10, lifetime / 2))
    this.tokens.set(`${challenge.params.service ?? ''}|${wanted}`, { value, expiresAt: this.clock.now() + ttl * 1000 })
    return `Bearer ${value}`
  }

  private async exchange (
    method: 'GET' | 'HEAD',
    url: URL,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<Dispatcher.ResponseData> {
    const { signal } = options
    let target = url
    let sendHeaders: Record<string, string> = { 'user-agent': USER_AGENT, ...headers }
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      let res: Dispatcher.ResponseData
      try {
        // undici's request does not follow redirects: each hop is ours to check.
        res = await request(target, { method, headers: sendHeaders, dispatcher: this.agent, signal, highWaterMark: BODY_HIGH_WATER })
      } catch (err) {
        if (signal?.aborted === true) throw err
        throw new UpstreamUnavailableError(
          this.name,
          `${method} ${target.origin}${target.pathname}: ${(err as Error).message}`,
          undefined,
          { cause: err }
        )
      }
      const location = header(res.headers, 'location')
      if (res.statusCode < 300 || res.statusCode > 399 || location === undefined) return res
      await res.body.dump()
      const next = new URL(location, target)
      // Blob storage (S3, CDN) gets presigned URLs; our registry credentials stay with the registry.
      if (next.host !== target.host) {
        const { authorization: _drop, ...rest } = sendHeaders
        sendHeaders = rest
      }
      target = next
    }
    throw new UpstreamUnavailableError(this.name, `more than ${MAX_REDIRECTS} redirects for ${url.pathname}`)
  }
}

/**
 * An upstream answer as RegistryUpstream.send returns it: 429 and 5xx throw (the fallbacks, a
 * peer's copy or a stale record, take over), any other status is returned. `request` names it
 * in the error (`GET /v2/...`); `withBody` adds the start of the upstream's own answer.
 * @throws UpstreamRateLimitedError (429), UpstreamUnavailableError (5xx)
 */
export async function availableOrThrow (
  upstream: string,
  request: string,
  res: UpstreamResponse,
  withBody = true
): Promise<UpstreamResponse> {
  if (res.status !== 429 && res.status < 500) return res
  const text = withBody ? (await readLimited(res.body, 64 * 1024).catch(() => '')).slice(0, 200) : (discard(res.body), '')
  if (res.status === 429) throw new UpstreamRateLimitedError(upstream, `${request} answered 429 ${text}`.trim(), res.headers['retry-after'])
  throw new UpstreamUnavailableError(upstream, `${request} answered ${res.status} ${text}`.trim(), res.status)
}

/** RegistryUpstream.sendOk's rule: any non-2xx is an UpstreamStatusError carrying the upstream's body (up to 64 KiB), for the client. */
export async function okOrThrow (upstream: string, method: 'GET' | 'HEAD', res: UpstreamResponse): Promise<UpstreamResponse> {
  if (res.status >= 200 && res.status <= 299) return res
  throw new UpstreamStatusError(
    upstream,
    res.status,
    method === 'HEAD' ? '' : await readLimited(res.body, 64 * 1024),
    res.headers['content-type']
  )
}
