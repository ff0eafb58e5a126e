/** What the index knows of a committed blob. */
export interface BlobRecord {
  size: number
  /** Set for manifests so they can be served with their Content-Type. */
  mediaType?: string
  createdAt: number
  accessedAt: number
  pinned?: boolean
  /**
   * ms since the epoch: kept against eviction until then (content pushed to the local namespace,
   * and replicas of it, for CACHE_LOCAL_TTL); evictable like the rest afterwards.
   */
  keepUntil?: number
  /** File mtime at commit: a file changed since then is re-verified before it is served. */
  mtimeMs: number
}

/** Whether `current` is still the commit `record` was read from (not removed, not written again). */
export function sameCommit (current: BlobRecord | undefined, record: BlobRecord): current is BlobRecord {
  return current !== undefined && current.size === record.size && current.mtimeMs === record.mtimeMs
}
