import type { AbortOptions, Peer, PeerData, PeerId, PeerStore, TypedEventTarget, Libp2pEvents, PeerUpdate } from '@libp2p/interface'

/** A protocols-only merge already in the record is skipped for this long after the last real one. */
export const PROTOCOL_MERGE_TTL_MS = 60_000

const WRAPPED = Symbol.for('p2p-cache.protocol-merges')

interface Known {
  protocols: Set<string>
  peer: Peer
  at: number
}

/**
 * Makes libp2p's per-stream peer-store write cheap (issue 23). libp2p 3 merges the negotiated
 * protocol into the remote peer's record on every stream it opens or accepts
 * (`connection.newStream`, `onIncomingStream`): a write lock, a protobuf decode, an encode and a
 * datastore put, about a millisecond each. A herd opens a stream per piece run, probe, claim and
 * hashes request, and those merges were 13% of the sidecars' CPU in a 10-node herd's profile.
 *
 * A merge that names only protocols the record already listed at the last real merge for that
 * peer, less than `ttlMs` ago, returns that merge's result instead of writing the same record
 * again. Any change to the record (`peer:update`, which every save, patch and merge that changed
 * something dispatches) and any delete forget the peer, so the next merge is a real one. What
 * the skip gives up is the record's `updated` time refreshed on every stream: it is refreshed at
 * most `ttlMs` later instead, far inside the peer store's address expiry (an hour).
 *
 * Wraps the instance's `merge` and `delete` once; a second call is a no-op.
 */
export function skipRepeatedProtocolMerges (
  peerStore: PeerStore,
  events: TypedEventTarget<Libp2pEvents>,
  ttlMs = PROTOCOL_MERGE_TTL_MS,
  now: () => number = Date.now
): void {
  const store = peerStore as PeerStore & { [WRAPPED]?: true }
  if (store[WRAPPED] === true) return
  store[WRAPPED] = true
  const known = new Map<string, Known>()
  events.addEventListener('peer:update', (evt: CustomEvent<PeerUpdate>) => {
    known.delete(evt.detail.peer.id.toString())
  })
  const merge = peerStore.merge.bind(peerStore)
  const remove = peerStore.delete.bind(peerStore)
  peerStore.merge = async (id: PeerId, data: PeerData, options?: AbortOptions): Promise<Peer> => {
    const key = id.toString()
    const protocols = onlyProtocols(data)
    const entry = known.get(key)
    if (protocols !== undefined && entry !== undefined && now() - entry.at < ttlMs && protocols.every(p => entry.protocols.has(p))) {
      return entry.peer
    }
    const peer = await merge(id, data, options)
    // Set after the write: its own peer:update (dispatched inside merge) must not drop it.
    if (protocols !== undefined) known.set(key, { protocols: new Set(peer.protocols), peer, at: now() })
    return peer
  }
  peerStore.delete = async (id: PeerId, options?: AbortOptions): Promise<void> => {
    known.delete(id.toString())
    await remove(id, options)
  }
}

/** The protocols of a merge that changes nothing else, else undefined. */
function onlyProtocols (data: PeerData): string[] | undefined {
  const keys = Object.keys(data).filter(k => (data as Record<string, unknown>)[k] !== undefined)
  return keys.length === 1 && keys[0] === 'protocols' && data.protocols !== undefined ? [...data.protocols] : undefined
}
