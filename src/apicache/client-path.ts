import type { AbortOptions } from '@libp2p/interface'
import { normalizeAccept } from '../keys/api-key.js'
import type { ApiUpstreams } from '../upstream/api-client.js'
import { conditionalHeaders, type CacheSemantics } from './cache-semantics.js'
import type { CandidateSearch } from './candidate-search.js'
import type { ResponseCache } from './response-cache.js'
import { resourceOf, type ApiCacheAnswer, type ApiRequest } from './answer.js'

export interface ClientPathInit {
  client: Pick<ApiUpstreams, 'get'>
  responses: Pick<ResponseCache, 'stored' | 'revalidated' | 'fresh'>
  candidates: Pick<CandidateSearch, 'find'>
  semantics: Pick<CacheSemantics, 'policyRequest' | 'servable' | 'hit'>
  /** Largest body stored, in bytes (CACHE_API_MAX_BODY): a longer one is streamed, not read whole. */
  maxBody: number
}

/**
 * Requests answered under the client's own credential scope: its stored copy while fresh and
 * shareable, else a conditional request with the client's credential. Its own copy is
 * revalidated with its own validators; for a representation the same for every credential,
 * another scope's or a peer's copy only with If-Modified-Since (never another token's ETag).
 */
export class ClientPath {
  constructor (private readonly init: ClientPathInit) {}

  /**
   * `req` under `scope` (the client credential's); `shared`: its representation is the same for
   * every credential that may see it (ApiTarget.shared).
   * @throws undici errors when the upstream can't be reached, AbortError
   */
  async answer (req: ApiRequest, scope: string, shared: boolean, options: AbortOptions = {}): Promise<ApiCacheAnswer> {
    const signal = options.signal ?? new AbortController().signal
    const resource = resourceOf(req)
    const accept = normalizeAccept(req.headers.accept)
    const { semantics, responses } = this.init
    const policyRequest = semantics.policyRequest(req, scope)
    const stored = await responses.stored(resource, scope, accept, options)
    if (stored !== undefined && semantics.servable(stored, scope, req)) return semantics.hit(stored)
    const candidate = await this.init.candidates.find({ resource, accept, scope, identity: undefined, own: stored, shared }, options)
    const conditional = candidate === undefined ? undefined : conditionalHeaders(candidate.headers, candidate.ownEtag)
    const res = await this.init.client.get(
      req.upstream,
      req.path,
      { ...req.headers, ...conditional },
      { signal, maxBytes: this.init.maxBody }
    )
    if (res.status === 304 && candidate !== undefined && conditional !== undefined) {
      return await responses.revalidated(resource, scope, policyRequest, candidate, res, undefined, options)
    }
    return await responses.fresh(resource, scope, policyRequest, res, undefined, options)
  }
}
