import type { AbortOptions } from '@libp2p/interface'
import type { Digest } from '../oci/digest.js'
import type { TagKey } from '../oci/tag-key.js'
import type { ApiKey } from '../keys/api-key.js'
import type { RecordKey } from '../keys/record-key.js'
import type { FetchOptions, PeerBlob, PeerRef, PieceHashAnswer } from '../p2p/fetch/client.js'
import type { FetchRequest } from '../p2p/fetch/frames.js'
import type { ClaimRequest } from '../p2p/claim/frames.js'
import type { ClaimOptions, CoordinatedAnswer } from '../p2p/claim/service.js'

/** A key the swarm announces and looks up: a blob digest, a resolved tag, an API record. */
export type SwarmKey = Digest | TagKey | ApiKey | RecordKey

/**
 * What the resolvers ask of the swarm (p2p/Swarm implements it; unit tests use an in-memory
 * fake). Peer failures surface as PeerFetchError; nothing here goes to the upstream.
 */
export interface PeerNetwork {
  /** This node's peer ID (its string form names it in claims). */
  readonly peerId: { toString: () => string }
  /** Providers of `key` found on the DHT, in the order found; ends when the lookup does or `options.signal` aborts. */
  providers: (key: SwarmKey, options?: AbortOptions) => AsyncGenerator<PeerRef>
  /**
   * Bytes [start, end) of `request.key` from `peer` over the fetch protocol (docs/design.md §3.4).
   * @throws PeerFetchError (dial, not_found, busy, stalled, refused, truncated)
   */
  fetch: (peer: PeerRef, request: FetchRequest, opts: FetchOptions) => Promise<PeerBlob>
  /**
   * The piece hashes of `key` from `peer`'s copy, pieces `from` on (fetch/1.2.0); a peer still
   * fetching it answers when it has a next one, or with none after a while.
   * @throws PeerFetchError (`refused` from a peer without pieces, and the reasons of `fetch`)
   */
  pieceHashes: (peer: PeerRef, key: Digest, from: number, opts: FetchOptions) => Promise<PieceHashAnswer>
  /**
   * A claim on a cold key to its coordinator (the closest peer to the key, or `options.to`):
   * "fetch" (this node goes upstream) or "join" (read from the peer named). Undefined when no
   * coordinator answered in time.
   */
  claim: (request: ClaimRequest, options: ClaimOptions) => Promise<CoordinatedAnswer | undefined>
  /** Sets a peer aside for a while (it sent bytes that did not match their digest). */
  deny: (peer: string, reason: string) => void
  isDenied: (peer: string) => boolean
  /** Provides `key` on the DHT (in the background, deduplicated); `now`: without waiting for the node to be quiet (a download in progress). */
  announce: (key: SwarmKey, opts?: { now?: boolean }) => void
  /** Stops providing `key` (it left the store). */
  forget: (key: SwarmKey) => void
  /** Provides `keys` now and resolves once that is done (a write other nodes must find at once); optional in fakes. */
  provideNow?: (keys: Array<Digest | RecordKey>, options?: AbortOptions) => Promise<void>
}
