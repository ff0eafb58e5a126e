import { createReadStream, type ReadStream } from 'node:fs'
import { open, rm, stat, type FileHandle } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import type { BlobCatalog } from './catalog.js'
import { ACCESS_TIME_RESOLUTION_MS, READ_CHUNK } from './constants.js'
import { StoreUnavailableError } from './errors.js'
import { blobPath, type StoreLayout } from './layout.js'
import type { Leases } from './leases.js'
import { hashFile } from './reconcile.js'
import { sameCommit, type BlobRecord } from './record.js'

/** An open, leased, verified blob; `release` when the response is done. */
export interface BlobHandle {
  digest: Digest
  record: BlobRecord
  /** Bytes `start` to `end` of the blob, both inclusive (as in an HTTP range); the whole blob without them. */
  stream: (start?: number, end?: number) => ReadStream
  /** The whole blob in memory: for small ones (manifests, API responses). */
  read: () => Promise<Buffer>
  release: () => Promise<void>
}

export interface BlobOpenerInit {
  /** CACHE_DIR, named in a StoreUnavailableError. */
  dir: string
  layout: StoreLayout
  catalog: Pick<BlobCatalog, 'get' | 'put' | 'exclusive' | 'forget'>
  /** Held while a handle is open: eviction skips the blob. */
  leases: Pick<Leases, 'acquire'>
  /** Access times (LRU order). */
  clock: Clock
  log: Logger
  /** A file that no longer matched its digest was found and removed. */
  onCorrupt?: ((digest: Digest) => void) | undefined
}

/**
 * Opens stored blobs for reading: under a lease (eviction keeps away until `release`), with a
 * file changed since its commit re-hashed first, and the access recorded for LRU order.
 */
export class BlobOpener {
  constructor (private readonly init: BlobOpenerInit) {}

  /**
   * Opens a blob for reading under a lease. A file changed since it was committed is re-hashed
   * first; if it no longer matches it is deleted and the blob is reported missing.
   * @throws StoreUnavailableError when the file exists but can't be opened now (EMFILE...): the record stays
   */
  async open (digest: Digest): Promise<BlobHandle | undefined> {
    const { catalog } = this.init
    const record = await catalog.get(digest)
    if (record === undefined) return undefined
    const release = this.init.leases.acquire(digest)
    const path = blobPath(this.init.layout, digest)
    let file: FileHandle
    try {
      file = await open(path, 'r')
    } catch (err) {
      release()
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new StoreUnavailableError(digest, this.init.dir, err)
      // Unless a new commit put the blob back meanwhile.
      await catalog.exclusive(digest, async () => {
        if (sameCommit(await catalog.get(digest), record) && !await exists(path)) await catalog.forget(digest, record)
      })
      return undefined
    }
    const info = await file.stat()
    if (info.size !== record.size || info.mtimeMs !== record.mtimeMs) {
      const actual = await hashFile(path)
      if (actual !== digest || info.size !== record.size) {
        await file.close()
        release()
        const removed = await catalog.exclusive(digest, async () => {
          // A commit since the record was read replaced the file: that one is verified.
          if (!sameCommit(await catalog.get(digest), record)) return false
          await rm(path, { force: true })
          await catalog.forget(digest, record)
          return true
        })
        if (removed) {
          this.init.log.error(
            { digest, expectedSize: record.size, size: info.size },
            'blob file corrupted on disk; removed, it will be fetched again'
          )
          this.init.onCorrupt?.(digest)
        }
        return undefined
      }
      await catalog.exclusive(digest, async () => {
        const current = await catalog.get(digest)
        if (!sameCommit(current, record)) return
        record.mtimeMs = current.mtimeMs = info.mtimeMs
        await catalog.put(digest, current)
      })
    }
    await this.touch(digest, record)
    return handle(digest, record, path, file, release)
  }

  /** Records the access for LRU; a hit is served even when the index can't be written (full disk). */
  private async touch (digest: Digest, record: BlobRecord): Promise<void> {
    const { catalog } = this.init
    const now = this.init.clock.now()
    if (now - record.accessedAt < ACCESS_TIME_RESOLUTION_MS) return
    await catalog.exclusive(digest, async () => {
      // Not over a delete or a newer commit done meanwhile.
      const current = await catalog.get(digest)
      if (!sameCommit(current, record)) return
      record.accessedAt = current.accessedAt = now
      await catalog.put(digest, current)
    }).catch((err: Error) => {
      this.init.log.debug({ digest, err: err.message }, 'access time not recorded')
    })
  }
}

/** The handle over `file`, open on `path`; its `release` closes the file and ends the lease once. */
function handle (digest: Digest, record: BlobRecord, path: string, file: FileHandle, release: () => void): BlobHandle {
  let closed = false
  const stream = (start?: number, end?: number): ReadStream => createReadStream(path, {
    fd: file,
    start,
    end,
    autoClose: false,
    highWaterMark: READ_CHUNK
  })
  return {
    digest,
    record,
    stream,
    read: async () => {
      const chunks: Buffer[] = []
      for await (const chunk of stream()) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    },
    release: async () => {
      if (closed) return
      closed = true
      release()
      await file.close().catch(() => {})
    }
  }
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}
