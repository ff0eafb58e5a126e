import CachePolicy from 'http-cache-semantics'
import { normalizeAccept } from '../keys/api-key.js'
import { systemClock, type Clock } from '../clock/clock.js'
import { withoutRateLimit, type HeaderMap } from './headers.js'
import type { ApiRecord, StoredResponse } from './records.js'
import type { HotEntry } from './hot-records.js'
import type { ApiCacheAnswer, ApiRequest } from './answer.js'
import { FLEET_SCOPE, KEYED_REQUEST_HEADERS } from './constants.js'

export interface CacheSemanticsInit {
  /** Freshness, ages and expiry are computed on it. */
  clock: Clock
}

/**
 * RFC 9111 for stored API responses (http-cache-semantics): what a stored copy's policy sees of
 * a request, whether a copy answers a request without asking upstream, and the headers a HIT
 * sends. No I/O.
 */
export class CacheSemantics {
  /** CachePolicy computing ages and freshness on the clock: make stored policies with it. */
  readonly Policy: typeof CachePolicy
  private readonly clock: Clock

  constructor (init: CacheSemanticsInit) {
    this.clock = init.clock
    this.Policy = policyOn(init.clock)
  }

  /**
   * `req` as the policy (which is stored) sees it: the scope in place of the credential (no
   * token reaches the disk), `host` the upstream's, `accept` normalized as the cache key is.
   */
  policyRequest (req: ApiRequest, scope: string): CachePolicy.Request {
    const headers: HeaderMap = { ...req.headers, host: req.upstream.url.host }
    if (headers.authorization !== undefined || scope === FLEET_SCOPE) headers.authorization = scope
    // `Vary: Accept` then sees what the cache key sees: the default representation's names as one.
    const accept = normalizeAccept(headers.accept)
    if (accept === '') delete headers.accept
    else headers.accept = accept
    return { url: req.path, method: 'GET', headers }
  }

  /**
   * Whether a stored copy under `scope` answers `req` without asking upstream: fresh (RFC 9111)
   * and shareable without revalidation (anonymous, the fleet's, or marked `public`).
   */
  servable (stored: StoredResponse, scope: string, req: ApiRequest): boolean {
    return shareableWithoutAsking(stored.record, scope) && stored.policy.satisfiesWithoutRevalidation(this.policyRequest(req, scope))
  }

  /**
   * `servable` for an in-memory entry, with the policy's verdict memoized: while the entry is
   * fresh, a request without its own Cache-Control/Pragma whose Vary-ed headers are all in the
   * key (Accept, Authorization as the scope, Accept-Encoding never forwarded) is what
   * satisfiesWithoutRevalidation accepts, so the policy is not asked (the hot path).
   */
  servableFromMemory (entry: HotEntry, scope: string, req: ApiRequest): boolean {
    const quick = entry.varyInKey && this.clock.now() < entry.freshUntil && req.headers['cache-control'] === undefined &&
      req.headers.pragma === undefined
    return quick ? shareableWithoutAsking(entry.record, scope) : this.servable(entry, scope, req)
  }

  /**
   * A stored copy as a HIT: its headers with `Age` as of now (RFC 9111 5.1; computed once per
   * second and kept with the copy, so a hot entry's are reused) and without `X-RateLimit-*`.
   */
  hit (stored: StoredResponse): ApiCacheAnswer {
    const second = Math.floor(this.clock.now() / 1000)
    let headers = stored.hitHeaders?.second === second ? stored.hitHeaders.headers : undefined
    if (headers === undefined) {
      headers = withoutRateLimit(stored.policy.responseHeaders() as HeaderMap)
      stored.hitHeaders = { second, headers }
    }
    return { cache: 'HIT', status: stored.record.status, headers, body: stored.body, storedAt: stored.record.storedAt }
  }
}

/** Anonymous copies, the fleet's, and ones the server marked `public` are given without asking upstream while fresh. */
export function shareableWithoutAsking (record: ApiRecord, scope: string): boolean {
  return scope === 'anon' || scope === FLEET_SCOPE || /\bpublic\b/.test(record.headers['cache-control'] ?? '')
}

/** Whether a response's `Vary` names only KEYED_REQUEST_HEADERS (or is absent): then it fits every request for its key. */
export function varyInKey (vary: string | undefined): boolean {
  return vary === undefined || vary.split(',').every(name => KEYED_REQUEST_HEADERS.has(name.trim().toLowerCase()))
}

/**
 * The conditional headers a stored response allows: its ETag when `ownEtag` (the credential
 * about to be sent received it; GitHub's ETags are token-specific), else its Last-Modified.
 * Undefined: it can't be revalidated.
 */
export function conditionalHeaders (headers: HeaderMap, ownEtag: boolean): HeaderMap | undefined {
  if (ownEtag && headers.etag !== undefined) return { 'if-none-match': headers.etag }
  if (headers['last-modified'] !== undefined) return { 'if-modified-since': headers['last-modified'] }
  return undefined
}

/**
 * CachePolicy whose ages and freshness are computed on `clock` (http-cache-semantics reads the
 * time through its `now()` method, also from its constructor: hence a class per clock, not a field).
 */
export function policyOn (clock: Clock): typeof CachePolicy {
  if (clock === systemClock) return CachePolicy
  return class ClockedPolicy extends CachePolicy {
    now (): number {
      return clock.now()
    }
  }
}
