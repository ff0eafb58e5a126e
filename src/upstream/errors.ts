import { P2pCacheError } from '../errors/p2p-cache-error.js'
/**
 * The upstream could not give an answer: connection refused, DNS, timeout, 5xx or 429.
 * A tag may then be served from the last resolution; an answer (200/404/401...) always decides.
 */
export class UpstreamUnavailableError extends P2pCacheError {
  constructor (readonly upstream: string, readonly reason: string, readonly status?: number, options?: { cause?: unknown }) {
    super(`upstream ${upstream} unavailable: ${reason}`, { ...options, httpStatus: 502 })
  }
}

/** The upstream answered with a status we pass on to the client (404, 401, 403...). */
export class UpstreamStatusError extends P2pCacheError {
  constructor (readonly upstream: string, readonly status: number, readonly body: string, readonly contentType: string | undefined) {
    super(`upstream ${upstream} answered ${status}`, { httpStatus: 502 })
  }
}

/**
 * The upstream answered 429: this host (or its credential) spent its rate limit, e.g. Docker
 * Hub's pull limit. Still "unavailable" for the fallbacks (a peer's copy, the last tag
 * resolution); the client is told it is a rate limit, with the upstream's Retry-After.
 */
export class UpstreamRateLimitedError extends UpstreamUnavailableError {
  constructor (upstream: string, reason: string, readonly retryAfter: string | undefined) {
    super(upstream, reason, 429)
  }
}
