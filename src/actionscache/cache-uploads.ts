import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { StoreWriter } from '../store/roles.js'
import type { BlobWriter } from '../store/writer.js'
import { systemClock, type Clock } from '../clock/clock.js'
import type { EntryPlace } from './cache-entries.js'
import { CACHE_UPLOAD_IDLE_MS, MAX_BLOCKS, MAX_CACHE_UPLOADS } from './constants.js'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/** What an upload will become once finalized. */
export interface PendingEntry extends EntryPlace {
  key: string
}

/** A request on an upload that can't be served; `status` is the HTTP status to answer with. */
export class CacheUploadError extends P2pCacheError {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

interface Upload {
  entry: PendingEntry
  /** Staged blocks (Put Block), by block ID: their file and size. */
  blocks: Map<string, { path: string, size: number }>
  /**
   * The archive (Put Blob, or Put Block List), written and hashed but committed to the store only
   * when the upload is finalized: an upload that never is leaves nothing behind.
   */
  archive?: BlobWriter
  touchedAt: number
  busy: number
}

export interface CacheUploadsInit {
  store: Pick<StoreWriter, 'createWriter' | 'commit' | 'layout'>
  log: Logger
  clock?: Clock
  idleMs?: number
}

/**
 * Uploads of cache archives as Azure Blob Storage takes them (the URL CreateCacheEntry hands
 * out): one Put Blob, or Put Block per block (any order, in parallel) and a Put Block List that
 * names their order. The archive is hashed as it is written, and committed to the store by its
 * own sha256 only when finalized with its size. Bounded in number; an upload untouched for CACHE_UPLOAD_IDLE_MS expires with its
 * blocks.
 */
export class CacheUploads {
  private readonly uploads = new Map<string, Upload>()
  private readonly clock: Clock
  private readonly sweeper: NodeJS.Timeout

  constructor (private readonly init: CacheUploadsInit) {
    this.clock = init.clock ?? systemClock
    this.sweeper = setInterval(() => {
      void this.sweep()
    }, 60_000)
    this.sweeper.unref()
  }

  /** Opens an upload for `entry`; its ID goes in the upload URL. @throws CacheUploadError 429 */
  async start (entry: PendingEntry): Promise<string> {
    await this.sweep()
    if (this.uploads.size >= MAX_CACHE_UPLOADS) {
      throw new CacheUploadError(429, 'resource_exhausted', `${this.uploads.size} cache uploads are open on this sidecar; retry later`)
    }
    const id = randomUUID()
    this.uploads.set(id, { entry, blocks: new Map(), touchedAt: this.clock.now(), busy: 0 })
    return id
  }

  /** Put Blob: `body` is the whole archive. */
  async putBlob (id: string, body: Readable): Promise<void> {
    await this.with(id, async u => {
      await this.writeArchive(u, async writer => {
        for await (const chunk of body) await writer.write(chunk as Buffer)
      })
    })
  }

  /** Put Block: stages `body` as block `blockId` (a block sent again replaces the first). */
  async putBlock (id: string, blockId: string, body: Readable): Promise<void> {
    await this.with(id, async u => {
      if (blockId === '' || blockId.length > 128) {
        throw new CacheUploadError(400, 'InvalidQueryParameterValue', 'blockid must be 1 to 128 characters (base64)')
      }
      if (!u.blocks.has(blockId) && u.blocks.size >= MAX_BLOCKS) {
        throw new CacheUploadError(400, 'BlockCountExceedsLimit', `at most ${MAX_BLOCKS} blocks`)
      }
      const path = join(this.init.store.layout.tmp, `actions-${id}-${randomUUID()}`)
      let size = 0
      try {
        await pipeline(body, async function* (source) {
          for await (const chunk of source) {
            size += (chunk as Buffer).byteLength
            yield chunk
          }
        }, createWriteStream(path))
      } catch (err) {
        await rm(path, { force: true })
        throw err
      }
      const previous = u.blocks.get(blockId)
      u.blocks.set(blockId, { path, size })
      if (previous !== undefined) await rm(previous.path, { force: true })
    })
  }

  /** Put Block List: the staged blocks named, in order, become the archive. @throws CacheUploadError 400 InvalidBlockList */
  async putBlockList (id: string, blockIds: string[]): Promise<void> {
    await this.with(id, async u => {
      const missing = blockIds.find(b => !u.blocks.has(b))
      if (missing !== undefined) throw new CacheUploadError(400, 'InvalidBlockList', `block ${missing.slice(0, 100)} was not uploaded`)
      await this.writeArchive(u, async writer => {
        for (const blockId of blockIds) {
          const block = u.blocks.get(blockId) as { path: string }
          for await (const chunk of createReadStream(block.path)) await writer.write(chunk as Buffer)
        }
      })
      // The blocks are in the archive now.
      await removeBlocks(u)
    })
  }

  /** Writes the archive with `write` as the upload's (replacing an earlier one); nothing is kept on failure. */
  private async writeArchive (u: Upload, write: (writer: BlobWriter) => Promise<void>): Promise<void> {
    const writer = await this.init.store.createWriter()
    try {
      await write(writer)
      writer.keyByContent()
    } catch (err) {
      await writer.abort()
      throw err
    }
    await u.archive?.abort()
    u.archive = writer
  }

  /**
   * Ends upload `id` for `entry`: its archive, which must be `size` bytes.
   * @throws CacheUploadError 404 when there is no such upload for that entry, 409 while a PUT of
   * it is still being received, 400 when nothing was committed or the size differs (the upload
   * is dropped then)
   */
  async finish (id: string, entry: PendingEntry, size: number): Promise<{ digest: Digest, size: number }> {
    const u = this.uploads.get(id)
    if (
      u === undefined || u.entry.key !== entry.key || u.entry.scope !== entry.scope || u.entry.version !== entry.version ||
      u.entry.repository !== entry.repository
    ) {
      throw new CacheUploadError(
        404,
        'not_found',
        'no open upload for this key and version: CreateCacheEntry first, and finalize within 30 minutes'
      )
    }
    if (u.busy > 0) {
      throw new CacheUploadError(
        409,
        'failed_precondition',
        'the upload is still receiving bytes: finalize once every PUT has been answered'
      )
    }
    this.uploads.delete(id)
    const archive = u.archive
    u.archive = undefined
    await this.drop(u)
    if (archive === undefined) throw new CacheUploadError(400, 'invalid_argument', 'nothing was uploaded (no Put Blob or Put Block List)')
    if (archive.bytesWritten !== size) {
      await archive.abort()
      throw new CacheUploadError(400, 'invalid_argument', `size_bytes is ${size}, but ${archive.bytesWritten} bytes were uploaded`)
    }
    const digest = archive.digest
    await this.init.store.commit(archive, 'actions cache')
    return { digest, size }
  }

  /** The upload waiting to be finalized for `entry`, if any. */
  find (entry: PendingEntry): string | undefined {
    for (const [id, u] of this.uploads) {
      const e = u.entry
      if (e.key === entry.key && e.scope === entry.scope && e.version === entry.version && e.repository === entry.repository) return id
    }
    return undefined
  }

  async close (): Promise<void> {
    clearInterval(this.sweeper)
    const open = [...this.uploads.values()]
    this.uploads.clear()
    await Promise.all(open.map(async u => {
      await this.drop(u)
    }))
  }

  private async with (id: string, fn: (u: Upload) => Promise<void>): Promise<void> {
    const u = this.uploads.get(id)
    if (u === undefined) {
      throw new CacheUploadError(
        404,
        'BlobNotFound',
        `no cache upload ${id.slice(0, 64)}: it was finalized, or expired after ${
          Math.round((this.init.idleMs ?? CACHE_UPLOAD_IDLE_MS) / 60_000)
        } idle minutes`
      )
    }
    u.busy++
    try {
      await fn(u)
    } finally {
      u.busy--
      u.touchedAt = this.clock.now()
    }
  }

  /** Removes what the upload holds: its staged blocks, and an archive not committed. */
  private async drop (u: Upload): Promise<void> {
    await removeBlocks(u)
    await u.archive?.abort()
    u.archive = undefined
  }

  private async sweep (): Promise<void> {
    const cutoff = this.clock.now() - (this.init.idleMs ?? CACHE_UPLOAD_IDLE_MS)
    for (const [id, u] of this.uploads) {
      if (u.busy > 0 || u.touchedAt > cutoff) continue
      this.uploads.delete(id)
      this.init.log.info({ key: u.entry.key, blocks: u.blocks.size }, 'abandoned cache upload expired')
      await this.drop(u)
    }
  }
}

/** Removes an upload's staged blocks. */
async function removeBlocks (u: Upload): Promise<void> {
  const blocks = [...u.blocks.values()]
  u.blocks.clear()
  await Promise.all(blocks.map(async b => {
    await rm(b.path, { force: true })
  }))
}
