import type { AbortOptions } from '@libp2p/interface'
import type { Readable } from 'node:stream'

/** An upstream answer: headers lower-cased, one value each; the body still to be read (or discarded). */
export interface UpstreamResponse {
  status: number
  headers: Record<string, string | undefined>
  body: Readable
}

/**
 * An upstream registry as the resolvers and routes see it (OCI distribution spec, pull side):
 * RegistryClient implements it over HTTP with auth, unit tests with an in-memory fake.
 */
export interface RegistryUpstream {
  /** The name in CACHE_REGISTRY_UPSTREAMS (`docker.io`, `ghcr.io`...), also containerd's `?ns=`. */
  readonly name: string
  readonly url: URL
  /**
   * `method` on `path` (e.g. `/v2/<repo>/blobs/<digest>`) for repository `repo`, authenticating
   * as the registry asks. Any status below 500 other than 429 is returned.
   * @throws UpstreamRateLimitedError (429), UpstreamUnavailableError (5xx, connection), AbortError
   */
  send: (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options?: AbortOptions
  ) => Promise<UpstreamResponse>
  /** Like `send`, but a non-2xx answer throws UpstreamStatusError. */
  sendOk: (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options?: AbortOptions
  ) => Promise<UpstreamResponse>
  close: () => Promise<void>
}
