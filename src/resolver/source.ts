import type { Readable } from 'node:stream'

export type CacheStatus = 'HIT' | 'MISS' | 'PEER'

/** Where a blob's bytes come from for one response. */
export interface BlobSource {
  cache: CacheStatus
  /** `local`, or the upstream / peer name. */
  origin: string
  size: number | undefined
  mediaType?: string
  /** Bytes [start, end) — end exclusive, undefined = to the end. */
  stream: (start: number, end: number | undefined) => Readable
  release: () => Promise<void>
}
