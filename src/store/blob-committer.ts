import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import type { BlobCatalog } from './catalog.js'
import { UNKEYED } from './constants.js'
import { writeError } from './errors.js'
import type { Evictor } from './evictor.js'
import { blobPath, type StoreLayout } from './layout.js'
import type { Leases } from './leases.js'
import type { BlobRecord } from './record.js'
import type { SpaceAccount } from './space-account.js'
import { BlobWriter } from './writer.js'

export interface BlobCommitterInit {
  /** CACHE_DIR, named in a StoreFullError. */
  dir: string
  layout: StoreLayout
  catalog: Pick<BlobCatalog, 'get' | 'put' | 'exclusive'>
  /** Held from `createWriter` until commit or abort: eviction skips the digest meanwhile. */
  leases: Pick<Leases, 'acquire'>
  /** Counts what commits; a commit clears the full state (there was room). */
  space: Pick<SpaceAccount, 'adjust' | 'roomReturned'>
  /** Starts eviction once a commit takes the store past its high watermark. */
  evictor: Pick<Evictor, 'evictIfOver'>
  /** Creation and access times of new records. */
  clock: Clock
  onCommit?: ((digest: Digest, size: number) => void) | undefined
}

/**
 * The write side of the store: temporary files for new blobs (BlobWriter), and their commit —
 * verified, moved into place, indexed and counted.
 */
export class BlobCommitter {
  constructor (private readonly init: BlobCommitterInit) {}

  /**
   * Starts writing `digest`; the lease keeps eviction away until commit or abort. Without a
   * digest, the content's own sha256 becomes it (`BlobWriter.keyByContent` before `commit`).
   * @throws StoreFullError when the filesystem has no room for a new file; StoreUnavailableError
   * when the process is out of file descriptors
   */
  async createWriter (digest?: Digest): Promise<BlobWriter> {
    const { tmp } = this.init.layout
    if (digest === undefined) return await BlobWriter.create(UNKEYED, join(tmp, `new-${randomUUID()}`), this.init.dir, () => {})
    const release = this.init.leases.acquire(digest)
    try {
      return await BlobWriter.create(digest, join(tmp, `${digest.slice(7, 23)}-${randomUUID()}`), this.init.dir, release)
    } catch (err) {
      release()
      throw err
    }
  }

  /**
   * Verifies, moves into place and indexes what `writer` wrote. A blob stored again keeps its
   * creation time, pin and keep-until time, and counts in the size once.
   * @throws DigestMismatchError when the content is not the writer's digest (nothing is left
   * behind); StoreFullError when the filesystem is full
   */
  async commit (writer: BlobWriter, source: string, meta: { mediaType?: string } = {}): Promise<BlobRecord> {
    const { catalog, space } = this.init
    const path = blobPath(this.init.layout, writer.digest)
    const { record, size } = await catalog.exclusive(writer.digest, async () => {
      const { size, mtimeMs } = await writer.commit(path, source)
      const previous = await catalog.get(writer.digest)
      const now = this.init.clock.now()
      const record: BlobRecord = {
        size,
        mtimeMs,
        createdAt: previous?.createdAt ?? now,
        accessedAt: now,
        ...(meta.mediaType !== undefined ? { mediaType: meta.mediaType } : {}),
        ...(previous?.pinned === true ? { pinned: true } : {}),
        ...(previous?.keepUntil !== undefined ? { keepUntil: previous.keepUntil } : {})
      }
      try {
        await catalog.put(writer.digest, record)
      } catch (err) {
        // An unindexed file would hold space the size account can't see until the next start.
        if (previous === undefined) await rm(path, { force: true })
        throw writeError(err, this.init.dir)
      }
      space.adjust(size - (previous?.size ?? 0))
      return { record, size }
    })
    space.roomReturned()
    this.init.onCommit?.(writer.digest, size)
    this.init.evictor.evictIfOver()
    return record
  }
}
