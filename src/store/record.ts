/** What the index knows of a committed blob. */
export interface BlobRecord {
  size: number
  /** Set for manifests so they can be served with their Content-Type. */
  mediaType?: string
  createdAt: number
  accessedAt: number
  pinned?: boolean
  /** File mtime at commit: a file changed since then is re-verified before it is served. */
  mtimeMs: number
}
