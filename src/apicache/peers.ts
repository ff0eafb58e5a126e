import type { AbortOptions } from '@libp2p/interface'
import { apiKey, isApiKey, normalizeAccept, parseApiKey, type ApiKey } from '../keys/api-key.js'
import { tryProviders, type PeerLookupInit } from '../resolver/peer-lookup.js'
import { fetchVerified, MemorySink } from '../resolver/peer-fetch.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { conditionalHeaders } from './cache-semantics.js'
import type { RevalidationCandidate, CandidateQuery, PeerCandidates } from './candidate-search.js'
import type { SwarmPresence } from './response-cache.js'

export interface ApiPeersInit {
  /** The swarm, when CACHE_ENABLE_P2P is on; undefined: nothing is announced or asked for. */
  peers?: PeerLookupInit | undefined
  /** Largest body taken from a peer, in bytes (CACHE_API_MAX_BODY). */
  maxBody: number
}

/**
 * The API cache's part in the swarm: stored records are announced under their swarm key (no
 * credential in it) and withdrawn when their body goes; a node without a copy of its own asks
 * peers for theirs, to revalidate upstream.
 */
export class ApiPeers implements PeerCandidates, SwarmPresence {
  constructor (private readonly init: ApiPeersInit) {}

  /** Tells the swarm this node holds a record of `resource` for `accept` (if it has a usable key). */
  announce (resource: string, accept: string): void {
    const key = swarmKey(resource, accept)
    if (key !== undefined) this.init.peers?.swarm.announce(key)
  }

  /** Tells the swarm this node no longer holds the record announced under `key`. */
  withdraw (key: ApiKey): void {
    this.init.peers?.swarm.forget(key)
  }

  /**
   * A peer's stored response for `query` (the record of the resource for its Accept, whoever
   * stored it) that `query.identity` can revalidate (see CandidateSearch), its body verified
   * against the digest the peer named. Undefined: no peer had one within the lookup budget.
   * @throws AbortError when `options.signal` aborts; local errors (not a peer's)
   */
  async candidate (query: CandidateQuery, options: AbortOptions = {}): Promise<RevalidationCandidate | undefined> {
    const peers = this.init.peers
    const key = swarmKey(query.resource, query.accept)
    if (peers === undefined || key === undefined) return undefined
    const { identity } = query
    const ownEtag = (validator: string | undefined): boolean => identity !== undefined && validator === identity
    return await tryProviders(
      peers,
      key,
      { signal: options.signal, budgetMs: peers.lookupTimeoutMs + 2 * peers.idleMs },
      async (peer, { signal: attempt }) => {
        let sink: MemorySink | undefined
        const blob = await fetchVerified(peers, peer, {
          request: { key },
          signal: attempt,
          maxSize: this.init.maxBody,
          open: answer => {
            if (answer.api === undefined) throw new PeerFetchError(answer.peer, 'refused', 'answered an API key without a record')
            if (conditionalHeaders(answer.api.headers, ownEtag(answer.api.validator)) === undefined) {
              throw new PeerFetchError(answer.peer, 'refused', 'a record without a usable validator')
            }
            sink = new MemorySink(answer.api.body)
            return sink
          }
        })
        if (blob.api === undefined || sink === undefined) throw new PeerFetchError(blob.peer, 'protocol', 'lost its API record')
        return {
          status: blob.api.status,
          headers: blob.api.headers,
          body: sink.body,
          ownEtag: ownEtag(blob.api.validator),
          peer: blob.peer
        }
      }
    )
  }
}

/**
 * The swarm key of a record, if it has one. A key peers refuse (a path or Accept longer than
 * the fetch protocol takes, 400 and 200 characters; an upstream name over 64) or that does not
 * name the record again when a peer parses it (a `#` in the Accept) would be announced and
 * asked for in vain: such a record is neither announced nor looked up (it stays this node's own).
 */
export function swarmKey (resource: string, accept: string): ApiKey | undefined {
  const key = apiKey(resource, accept)
  const parsed = isApiKey(key) ? parseApiKey(key) : undefined
  return parsed?.resource === resource && parsed.accept === normalizeAccept(accept) ? key : undefined
}
