import type { AbortOptions } from '@libp2p/interface'
import type { Digest } from '../oci/digest.js'
import type { HeaderMap } from './headers.js'
import type { ApiRecords, StoredResponse } from './records.js'
import { conditionalHeaders } from './cache-semantics.js'

/** A stored response that can be revalidated: this node's (any scope) or a peer's. */
export interface RevalidationCandidate {
  status: number
  headers: HeaderMap
  body: Buffer
  /**
   * The credential about to be sent received its ETag (GitHub's are token-specific): it is
   * sent as If-None-Match; otherwise only its Last-Modified is usable.
   */
  ownEtag: boolean
  /** The peer it came from. */
  peer?: string
}

/** What a copy to revalidate is searched for. */
export interface CandidateQuery {
  /** `<upstream> <path?query>`. */
  resource: string
  /** Normalized (the record key's). */
  accept: string
  /** The scope the answer is for: its own copy is `own`, other scopes are searched. */
  scope: string
  /**
   * validatorIdentity of the fleet credential about to be sent; undefined when it is the
   * client's own (whose scope's copy carries its own ETag).
   */
  identity: string | undefined
  /** The scope's own stored copy, if any: it is the candidate. */
  own: StoredResponse | undefined
  /**
   * Whether the representation is the same for every credential (ApiTarget.shared): only then
   * is another scope's or a peer's copy a candidate.
   */
  shared: boolean
}

/** Bodies of stored records (ResponseCache). */
export interface StoredBodies {
  /** The body stored under `digest`; undefined when it left the store. */
  readBody: (digest: Digest, options?: AbortOptions) => Promise<Buffer | undefined>
}

/** Copies the swarm holds (ApiPeers). */
export interface PeerCandidates {
  /** A peer's copy for `query` that `query.identity` can revalidate, its body verified; undefined: none found in time. */
  candidate: (query: CandidateQuery, options?: AbortOptions) => Promise<RevalidationCandidate | undefined>
}

export interface CandidateSearchInit {
  records: Pick<ApiRecords, 'all'>
  bodies: StoredBodies
  peers: PeerCandidates
}

/**
 * The search for a stored response to revalidate upstream when the request's own scope has no
 * fresh copy: the scope's own copy; else, for a shared representation, another scope's, else a
 * peer's, each only if the credential about to be sent can revalidate it (its own ETag, or a
 * Last-Modified: another token's ETag would be a full, charged 200).
 */
export class CandidateSearch {
  constructor (private readonly init: CandidateSearchInit) {}

  /**
   * The candidate for `query`; undefined: the request goes upstream unconditionally.
   * @throws the blob store's and the swarm's local errors; AbortError
   */
  async find (query: CandidateQuery, options: AbortOptions = {}): Promise<RevalidationCandidate | undefined> {
    const { own, identity } = query
    if (own !== undefined) {
      const { status, headers, validator } = own.record
      return { status, headers, body: own.body, ownEtag: identity === undefined || validator === identity }
    }
    if (!query.shared) return undefined
    return await this.otherScopes(query, options) ?? await this.init.peers.candidate(query, options)
  }

  /** Another scope's record for this Accept that `query.identity` can revalidate, with its body. */
  private async otherScopes (query: CandidateQuery, options: AbortOptions): Promise<RevalidationCandidate | undefined> {
    const { identity } = query
    for (const record of await this.init.records.all(query.resource)) {
      if (record.scope === query.scope || record.accept !== query.accept) continue
      const ownEtag = identity !== undefined && record.validator === identity
      if (conditionalHeaders(record.headers, ownEtag) === undefined) continue
      const body = await this.init.bodies.readBody(record.body, options)
      if (body !== undefined) return { status: record.status, headers: record.headers, body, ownEtag }
    }
    return undefined
  }
}
