import { statfs } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Clock } from '../clock/clock.js'
import { FULL_CLEAR_BYTES } from './constants.js'
import type { StoreFullError } from './errors.js'

/** What /readyz and the stats say about the store's filesystem. */
export interface StoreSpace {
  /** A write failed for want of space, and nothing has been committed since (or free space is still below FULL_CLEAR_BYTES). */
  full: boolean
  /** Bytes free for this process on the filesystem of CACHE_DIR; undefined when it can't be read. */
  free: number | undefined
}

export interface SpaceAccountInit {
  /** CACHE_DIR: the filesystem whose free space is read. */
  dir: string
  log: Logger
  clock: Clock
  /** Bytes of the blobs indexed at open. */
  size: number
  /** When the store was found full at open (ms since the epoch); undefined when it was not. */
  fullSince?: number | undefined
}

/**
 * The store's two views of space: the bytes its indexed blobs take (what CACHE_MAX_SIZE bounds),
 * and whether the filesystem under it is full (writes failed with StoreFullError), which
 * CACHE_MAX_SIZE alone can't tell when other files share the filesystem.
 */
export class SpaceAccount {
  private total: number
  /** When a write last failed for want of space, while the store is full. */
  private fullSince: number | undefined

  constructor (private readonly init: SpaceAccountInit) {
    this.total = init.size
    this.fullSince = init.fullSince
  }

  /** Bytes of the blobs indexed now. */
  get size (): number {
    return this.total
  }

  /** A write failed for want of space and nothing has committed since (`space()` also rechecks the filesystem). */
  get full (): boolean {
    return this.fullSince !== undefined
  }

  /** Counts `bytes` (negative when a blob left) in the size; callers hold the digest's index change. */
  adjust (bytes: number): void {
    this.total += bytes
  }

  /**
   * A write failed with StoreFullError: remembered for `space()` (and warned about once per
   * episode) until a blob commits or space returns.
   */
  markFull (err: StoreFullError): void {
    if (this.fullSince === undefined) this.init.log.warn({ err: err.message, size: this.total }, 'store filesystem full')
    this.fullSince = this.init.clock.now()
  }

  /** A blob committed (so there was room) or free space came back: the store is not full any more. */
  roomReturned (): void {
    if (this.fullSince === undefined) return
    this.fullSince = undefined
    this.init.log.info({ size: this.total }, 'store filesystem has room again')
  }

  /** Whether the store is full (see StoreSpace); reads the filesystem's free space (statfs). */
  async space (): Promise<StoreSpace> {
    let free: number | undefined
    try {
      const fs = await statfs(this.init.dir)
      free = fs.bavail * fs.bsize
    } catch {}
    if (this.fullSince !== undefined && free !== undefined && free >= FULL_CLEAR_BYTES) this.roomReturned()
    return { full: this.fullSince !== undefined, free }
  }
}
