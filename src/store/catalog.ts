import { rm } from 'node:fs/promises'
import type { Digest } from '../oci/digest.js'
import { blobPath, type StoreLayout } from './layout.js'
import type { BlobIndex } from './reconcile.js'
import type { BlobRecord } from './record.js'
import type { SpaceAccount } from './space-account.js'

export interface BlobCatalogInit {
  layout: StoreLayout
  /** The level sublevel of blob records, open. */
  index: BlobIndex
  /** Its size goes down as blobs leave. */
  space: Pick<SpaceAccount, 'adjust'>
  /** A blob left the store (eviction, DELETE, gc, corruption): stop announcing it. */
  onDelete?: ((digest: Digest) => void) | undefined
}

/**
 * The index of committed blobs (docs/design.md §3.5), changed one digest at a time: every part of the
 * store that changes a record does it inside `exclusive`, so the size account sees each commit
 * and removal once, and nothing writes back a record another caller removed.
 */
export class BlobCatalog {
  /** The last queued index change of each digest (see `exclusive`). */
  private readonly changing = new Map<Digest, Promise<void>>()

  constructor (private readonly init: BlobCatalogInit) {}

  /** The record of `digest`; undefined when it is not stored. */
  async get (digest: Digest): Promise<BlobRecord | undefined> {
    return await this.init.index.get(digest)
  }

  /** Writes the record of `digest`; callers hold `exclusive(digest)`. */
  async put (digest: Digest, record: BlobRecord): Promise<void> {
    await this.init.index.put(digest, record)
  }

  /** Every indexed blob with its record, in digest order. */
  async *entries (): AsyncGenerator<[Digest, BlobRecord]> {
    for await (const [key, record] of this.init.index.iterator()) yield [key as Digest, record]
  }

  /**
   * Runs `fn` with no other index change of `digest` in between: the size account sees each
   * commit and removal once, and nothing writes back a record another caller removed.
   */
  async exclusive<T> (digest: Digest, fn: () => Promise<T>): Promise<T> {
    const before = this.changing.get(digest)
    let done!: () => void
    const mine = new Promise<void>(resolve => {
      done = resolve
    })
    this.changing.set(digest, mine)
    try {
      await before
      return await fn()
    } finally {
      done()
      if (this.changing.get(digest) === mine) this.changing.delete(digest)
    }
  }

  /** Removes file and record of `digest`, in use or not; false when it was not stored. */
  async delete (digest: Digest): Promise<boolean> {
    return await this.exclusive(digest, async () => {
      const record = await this.get(digest)
      if (record === undefined) return false
      await rm(blobPath(this.init.layout, digest), { force: true })
      await this.forget(digest, record)
      return true
    })
  }

  /** Drops the record (its file is gone); callers hold `exclusive(digest)`. */
  async forget (digest: Digest, record: BlobRecord): Promise<void> {
    await this.init.index.del(digest)
    this.init.space.adjust(-record.size)
    this.init.onDelete?.(digest)
  }
}
