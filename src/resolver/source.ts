import type { AbortOptions } from '@libp2p/interface'
import type { Readable } from 'node:stream'
import type { BlobHandle } from '../store/roles.js'

export type CacheStatus = 'HIT' | 'MISS' | 'PEER'

/** Where a blob's bytes come from for one response. */
export interface BlobSource {
  cache: CacheStatus
  /** `local`, or the upstream / peer name. */
  origin: string
  /** A HIT: when this node stored the blob (its record's createdAt), for X-Cache-Date. */
  storedAt?: number
  size: number | undefined
  mediaType?: string
  /**
   * Bytes [start, end) — end exclusive, undefined = to the end. `pieces`: for a peer that checks
   * piece hashes, so only the blob's last byte waits for the digest (see BlobDownload.reader).
   */
  stream: (start: number, end: number | undefined, pieces?: boolean) => Readable
  release: () => Promise<void>
  /** A download in progress: bytes [0, have()) are written (verified piece by piece when from peers). */
  have?: () => number
  /** A download in progress from peers, piece by piece (this node relays verified pieces). */
  readonly relayed?: boolean
  /** A download in progress: which copy (see BlobDownload.epoch). */
  readonly epoch?: string
  /** A download in progress: its piece hashes (see BlobDownload.pieceHashes). */
  pieceHashes?: (from: number, max: number, options: Required<AbortOptions>) => Promise<string>
}

/** A blob of this node's store as a source: a local HIT, read from its file; `release` ends the read lease. */
export function storedSource (local: BlobHandle): BlobSource {
  return {
    cache: 'HIT',
    origin: 'local',
    storedAt: local.record.createdAt,
    size: local.record.size,
    ...(local.record.mediaType !== undefined ? { mediaType: local.record.mediaType } : {}),
    stream: (start, end) => local.stream(start, end === undefined ? undefined : end - 1),
    release: local.release
  }
}
