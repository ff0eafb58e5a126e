import type { Digest } from '../oci/digest.js'
import type { BlobRecord } from './record.js'

export interface EvictionPolicy {
  maxSize: number
  /** Fractions of maxSize. */
  highWatermark: number
  lowWatermark: number
  /** Blobs accessed more recently than this are kept unless the hard bound is exceeded. */
  minAgeMs: number
}

export interface EvictionCandidate {
  digest: Digest
  record: BlobRecord
}

export interface EvictionPlan {
  victims: EvictionCandidate[]
  /** True when recently used blobs had to go to respect maxSize. */
  overrodeMinAge: boolean
}

/**
 * Least recently used first, down to the low watermark, among blobs that are not pinned,
 * kept (`keepUntil`), in use, nor younger than minAge. If the store is still above the hard bound, recently used
 * blobs go too (never pinned, kept or in-use ones): the bound is the operator's promise about disk.
 * `force` (gc) prunes down to the low watermark even below the high one.
 */
export function planEviction (
  candidates: EvictionCandidate[],
  currentSize: number,
  policy: EvictionPolicy,
  now: number,
  inUse: (digest: Digest) => boolean,
  force = false
): EvictionPlan {
  const high = policy.maxSize * policy.highWatermark
  const low = policy.maxSize * policy.lowWatermark
  const plan: EvictionPlan = { victims: [], overrodeMinAge: false }
  if (currentSize <= high && !force) return plan

  const evictable = lruEvictable(candidates, inUse, now)

  let size = currentSize
  const chosen = new Set<Digest>()
  for (const c of evictable) {
    if (size <= low) break
    if (now - c.record.accessedAt < policy.minAgeMs) continue
    plan.victims.push(c)
    chosen.add(c.digest)
    size -= c.record.size
  }
  for (const c of evictable) {
    if (size <= policy.maxSize) break
    if (chosen.has(c.digest)) continue
    plan.victims.push(c)
    plan.overrodeMinAge = true
    size -= c.record.size
  }
  return plan
}

/**
 * Victims to free `bytes` on a full filesystem: least recently used first, any age, never
 * pinned, kept or in-use blobs. Fewer than asked when nothing else may go.
 */
export function planRoom (
  candidates: EvictionCandidate[],
  bytes: number,
  inUse: (digest: Digest) => boolean,
  now: number
): EvictionCandidate[] {
  const victims: EvictionCandidate[] = []
  let freed = 0
  for (const c of lruEvictable(candidates, inUse, now)) {
    if (freed >= bytes) break
    victims.push(c)
    freed += c.record.size
  }
  return victims
}

/** The blobs eviction may take at `now` (ms), least recently used first: not pinned, kept or in use. */
export function lruEvictable (candidates: EvictionCandidate[], inUse: (digest: Digest) => boolean, now: number): EvictionCandidate[] {
  return candidates
    .filter(c => c.record.pinned !== true && (c.record.keepUntil ?? 0) <= now && !inUse(c.digest))
    .sort((a, b) => a.record.accessedAt - b.record.accessedAt)
}
