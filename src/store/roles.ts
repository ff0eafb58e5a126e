import type { Digest } from '../oci/digest.js'
import type { BlobHandle } from './blob-opener.js'
import type { StoreFullError } from './errors.js'
import type { EvictionPolicy } from './eviction.js'
import type { StoreLayout } from './layout.js'
import type { BlobRecord } from './record.js'
import type { StoreSpace } from './space-account.js'
import type { BlobWriter } from './writer.js'

export type { BlobHandle } from './blob-opener.js'
export type { StoreSpace } from './space-account.js'

/*
 * The store as its callers see it, one role each: depend on the role (or a Pick of it), not on
 * BlobStore, so a module says what it does with the store and a unit test fakes only that.
 * BlobStore implements every role.
 */

/** Looking up and reading stored blobs: serving clients and peers, listing what to announce. */
export interface StoreReader {
  /** The configured bound (CACHE_MAX_SIZE, bytes): no single blob can be larger. */
  readonly maxSize: number
  /** The record of `digest`; undefined when it is not stored. */
  stat: (digest: Digest) => Promise<BlobRecord | undefined>
  /**
   * `digest` opened under a lease (eviction keeps away until `release`); undefined when it is not
   * stored, or its file was missing or corrupt (then removed).
   * @throws StoreUnavailableError when the file exists but can't be opened now (out of file descriptors)
   */
  openRead: (digest: Digest) => Promise<BlobHandle | undefined>
  /** Every stored blob with its record. */
  entries: () => AsyncGenerator<[Digest, BlobRecord]>
}

/**
 * Adding blobs: streamed through a BlobWriter then committed, or `put` whole from memory. A
 * streaming writer whose write fails with StoreFullError asks `makeRoom` once and, if nothing
 * was freed, calls `markFull` (`put` does both itself).
 */
export interface StoreWriter {
  /** Where the store's files are: scratch files of a write go under `tmp`, which every start empties. */
  readonly layout: StoreLayout
  /**
   * A writer of `digest` (without one, keyed by its content before commit); the digest is kept
   * from eviction until commit or abort.
   * @throws StoreFullError, StoreUnavailableError
   */
  createWriter: (digest?: Digest) => Promise<BlobWriter>
  /**
   * Verifies, moves into place and indexes what `writer` wrote (`source` names where it came from, in logs and errors).
   * @throws DigestMismatchError, StoreFullError
   */
  commit: (writer: BlobWriter, source: string, meta?: { mediaType?: string }) => Promise<BlobRecord>
  /**
   * Writes, verifies and commits a small body held in memory, making room once on a full filesystem.
   * @throws DigestMismatchError; StoreFullError when there is still no room (the store is then marked full)
   */
  put: (digest: Digest, body: Uint8Array, source: string, meta?: { mediaType?: string }) => Promise<BlobRecord>
  /** Evicts least recently used blobs not pinned, kept or in use, whatever their age, to free `bytes`; returns the bytes freed. */
  makeRoom: (bytes: number) => Promise<number>
  /** A write failed for want of space: the store reports itself full until a commit or space returns. */
  markFull: (err: StoreFullError) => void
}

/** Keeping blobs against eviction for a while: pushes to the local namespace and their replicas. */
export interface StoreKeeping {
  /** Keeps `digest` until `until` (ms since the epoch; the later time wins); false when it is not stored. */
  keepUntil: (digest: Digest, until: number) => Promise<boolean>
  /** Bytes kept against eviction now: what no eviction can free. */
  keptBytes: () => Promise<number>
}

/** The operator's view and controls: size and space (stats, /readyz), pins, gc, DELETE. */
export interface StoreAdmin {
  /** Bytes of the stored blobs. */
  readonly size: number
  /** A write failed for want of space and nothing has committed since. */
  readonly full: boolean
  readonly policy: EvictionPolicy
  /** Whether the store is full, and the bytes free on its filesystem (reads it: statfs). */
  space: () => Promise<StoreSpace>
  /** Pins `digest` against eviction, or lifts the pin; false when it is not stored. */
  setPinned: (digest: Digest, pinned: boolean) => Promise<boolean>
  /** Removes `digest`, in use or not; false when it was not stored. */
  delete: (digest: Digest) => Promise<boolean>
  /** Applies the eviction policy; `force` prunes to the low watermark (gc). Returns the blobs removed. */
  evict: (force?: boolean) => Promise<number>
  /** Removes every blob not in use; returns how many. */
  clear: () => Promise<number>
}
