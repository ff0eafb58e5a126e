import type { Readable } from 'node:stream'
import type { ApiUpstream } from '../upstream/api-client.js'
import type { HeaderMap } from './headers.js'

/** A GET (or HEAD) to resolve: the upstream, its path and query, the client's end-to-end headers. */
export interface ApiRequest {
  upstream: ApiUpstream
  path: string
  /** Without conditional or hop-by-hop headers; `authorization` is the client's credential. */
  headers: HeaderMap
}

/** Where an answer's body came from: memory or disk (HIT), the upstream (MISS), or a copy a 304 confirmed. */
export type ApiCacheStatus = 'HIT' | 'MISS' | 'REVALIDATED'

/** What the API cache answers a client's GET with (ApiRoutes sends it). */
export interface ApiCacheAnswer {
  cache: ApiCacheStatus
  status: number
  headers: HeaderMap
  /**
   * The whole body. A Readable when it is larger than CACHE_API_MAX_BODY: then it was not
   * stored, comes from the upstream as it arrives (`cache` is MISS), and `headers` keep the
   * upstream's `content-length` if it sent one; the receiver reads it or destroys it.
   */
  body: Buffer | Readable
  /** The peer whose copy a 304 confirmed. */
  peer?: string
  /** A HIT: when the copy was stored (its record's storedAt), for X-Cache-Date. */
  storedAt?: number
}

/** `<upstream> <path?query>`: what records, in-memory entries and swarm keys are keyed by. */
export function resourceOf (req: ApiRequest): string {
  return `${req.upstream.name} ${req.path}`
}

/** Lets go of an answer nobody will send: a streamed body is destroyed (its upstream request ends). */
export function discardAnswer (answer: { body: Buffer | Readable }): void {
  if (!Buffer.isBuffer(answer.body)) answer.body.destroy()
}
