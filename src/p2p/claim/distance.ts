import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { keyCid } from '../content-id.js'

/**
 * Kademlia ids (SHA-256 of the key's bytes), as @libp2p/kad-dht computes them: a content key is
 * hashed from its CID's multihash, a peer from its peer ID's multihash. The peer whose id is
 * closest to a key's id by XOR distance is where that key's provider records live, and so the
 * key's coordinator.
 */
export function keyKadId (key: string): Uint8Array {
  return createHash('sha256').update(keyCid(key).multihash.bytes).digest()
}

export function peerKadId (peerId: string): Uint8Array {
  return createHash('sha256').update(peerIdFromString(peerId).toMultihash().bytes).digest()
}

/** Negative when `a` is closer to `target` than `b` (XOR metric, big-endian). */
export function compareDistance (target: Uint8Array, a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < target.length; i++) {
    const da = (a[i] ?? 0) ^ (target[i] ?? 0)
    const db = (b[i] ?? 0) ^ (target[i] ?? 0)
    if (da !== db) return da - db
  }
  return 0
}

/**
 * `candidates` (peer ID strings, this node included) ordered by XOR distance to `key`, closest
 * first: the first is the key's coordinator, the next ones its stand-ins when it is unreachable.
 * Throws on a candidate that is not a peer ID.
 */
export function coordinatorsOf (key: string, candidates: string[]): string[] {
  const target = keyKadId(key)
  const ids = new Map(candidates.map(c => [c, peerKadId(c)] as const))
  return [...ids.keys()].sort((a, b) => compareDistance(target, ids.get(a) as Uint8Array, ids.get(b) as Uint8Array))
}

/** Whether peer `a` is strictly closer to `key` than peer `b`. Throws on a string that is not a peer ID. */
export function isCloser (key: string, a: string, b: string): boolean {
  return compareDistance(keyKadId(key), peerKadId(a), peerKadId(b)) < 0
}

/**
 * The peer of `others` closest to `key`, when it is strictly closer than `self`; else undefined
 * (`self` coordinates the key in this view). Throws on a string that is not a peer ID.
 */
export function closerPeer (key: string, self: string, others: string[]): string | undefined {
  const first = coordinatorsOf(key, [self, ...others])[0]
  return first === undefined || first === self ? undefined : first
}
