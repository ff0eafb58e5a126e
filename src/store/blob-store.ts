import { createReadStream, type ReadStream } from 'node:fs'
import { mkdir, open, rm, stat, statfs, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Level } from 'level'
import type { Logger } from 'pino'
import { systemClock, type Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import { blobPath, storeLayout, type StoreLayout } from './layout.js'
import { Leases } from './leases.js'
import { planEviction, planRoom, type Candidate, type EvictionPolicy } from './eviction.js'
import { freeForOpen, hashFile, reconcile, type BlobIndex } from './reconcile.js'
import type { BlobRecord } from './record.js'
import { BlobWriter } from './writer.js'
import { StoreFullError, StoreOpenError, StoreUnavailableError, isNoSpace, writeError } from './errors.js'

export interface BlobStoreEvents {
  onCommit?: (digest: Digest, size: number) => void
  onEvict?: (digest: Digest, size: number) => void
  /** A blob left the store (eviction, DELETE, gc, corruption): stop announcing it. */
  onDelete?: (digest: Digest) => void
  /** A file that no longer matched its digest was found and removed. */
  onCorrupt?: (digest: Digest) => void
}

export interface BlobStoreInit extends BlobStoreEvents {
  dir: string
  policy: EvictionPolicy
  log: Logger
  /** Access times, eviction's min age and when the store became full; `systemClock` by default. */
  clock?: Clock
}

/** An open, leased, verified blob; `release` when the response is done. */
export interface BlobHandle {
  digest: Digest
  record: BlobRecord
  stream: (start?: number, end?: number) => ReadStream
  /** The whole blob in memory: for small ones (manifests, API responses). */
  read: () => Promise<Buffer>
  release: () => Promise<void>
}

/** What /readyz and the stats say about the store's filesystem. */
export interface StoreSpace {
  /** A write failed for want of space, and nothing has been committed since (or free space is still below FULL_CLEAR_BYTES). */
  full: boolean
  /** Bytes free for this process on the filesystem of CACHE_DIR; undefined when it can't be read. */
  free: number | undefined
}

/** Room made for the index when it can't open on a full filesystem (see freeForOpen). */
const OPEN_ROOM_BYTES = 1024 * 1024
/** A full store counts as having space again once this much is free (or a blob committed). */
const FULL_CLEAR_BYTES = 16 * 1024 * 1024
/** Avoids an index write on every hit; LRU order only needs coarse access times. */
const ACCESS_TIME_RESOLUTION_MS = 60_000
const READ_CHUNK = 1024 * 1024

/**
 * Content-addressed blob files plus a level index (SPEC 3.5). All mutation goes through
 * here so the size account, leases and eviction see every change.
 */
/** The digest a writer made without one expects until `keyByContent`: nothing hashes to it, so an unkeyed commit fails. */
const UNKEYED: Digest = `sha256:${'0'.repeat(64)}`

export class BlobStore {
  readonly layout: StoreLayout
  readonly db: Level<string, unknown>
  private readonly index: BlobIndex
  private readonly leases = new Leases()
  /** The last queued index change of each digest (see `exclusive`). */
  private readonly changing = new Map<Digest, Promise<void>>()
  private total = 0
  private evicting: Promise<number> | undefined
  /** When a write last failed for want of space, while the store is full. */
  private fullSince: number | undefined
  private readonly clock: Clock

  private constructor (private readonly init: BlobStoreInit) {
    this.clock = init.clock ?? systemClock
    this.layout = storeLayout(init.dir)
    this.db = new Level<string, unknown>(this.layout.index, { valueEncoding: 'json' })
    this.index = this.db.sublevel<string, BlobRecord>('blobs', { valueEncoding: 'json' })
  }

  /**
   * Opens (creating) the store under `init.dir` and reconciles index and files (SPEC 3.5).
   * @throws StoreOpenError when the directory can't be written or another process holds the index
   */
  static async open (init: BlobStoreInit): Promise<BlobStore> {
    let store = new BlobStore(init)
    for (const dir of [store.layout.blobs, store.layout.tmp]) {
      try {
        await mkdir(dir, { recursive: true })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        throw new StoreOpenError(`CACHE_DIR=${init.dir}: cannot create ${dir} (${code}); give the sidecar a writable directory (a volume) with CACHE_DIR`, { cause: err })
      }
    }
    let freedAtOpen: { removed: Digest[], freed: number } | undefined
    for (;;) {
      try {
        await store.db.open()
        break
      } catch (err) {
        if (isNoSpace(err) && freedAtOpen === undefined) {
          // A sidecar that can't start fails every job on the host: cached blobs make room.
          freedAtOpen = await freeForOpen(store.layout, OPEN_ROOM_BYTES)
          // A level instance whose open failed stays unusable: a new one opens the same files.
          if (freedAtOpen.freed > 0) { store = new BlobStore(init); continue }
        }
        const locked = (err as { cause?: { code?: unknown } }).cause?.code === 'LEVEL_LOCKED'
        throw new StoreOpenError(locked
          ? `CACHE_DIR=${init.dir} is in use by another p2p-cache process (its index is locked); stop that process, or give this one its own CACHE_DIR`
          : isNoSpace(err)
            ? `CACHE_DIR=${init.dir}: the filesystem is full and no cached blob is left to remove; free space there, or give the sidecar its own volume`
            : `CACHE_DIR=${init.dir}: cannot open the index (${(err as Error).message}); check the directory's permissions and free space`, { cause: err })
      }
    }
    if (freedAtOpen !== undefined) {
      init.log.warn({ removed: freedAtOpen.removed, freed: freedAtOpen.freed }, 'store filesystem full at start; removed the least recently written cached blobs to open the index')
      store.fullSince = store.clock.now()
    }
    const report = await reconcile(store.layout, store.index, store.clock.now())
    for await (const record of store.index.values()) store.total += record.size
    init.log.info({ ...report, size: store.total }, 'store opened')
    return store
  }

  /** The configured bound (CACHE_MAX_SIZE): no single blob can be larger. */
  get maxSize (): number {
    return this.init.policy.maxSize
  }

  get size (): number {
    return this.total
  }

  /** A write failed for want of space and nothing has committed since (`space()` also rechecks the filesystem). */
  get full (): boolean {
    return this.fullSince !== undefined
  }

  get policy (): EvictionPolicy {
    return this.init.policy
  }

  async stat (digest: Digest): Promise<BlobRecord | undefined> {
    return await this.index.get(digest)
  }

  /**
   * Opens a blob for reading under a lease. A file changed since it was committed is re-hashed
   * first; if it no longer matches it is deleted and the blob is reported missing.
   * @throws StoreUnavailableError when the file exists but can't be opened now (EMFILE...): the record stays
   */
  async openRead (digest: Digest): Promise<BlobHandle | undefined> {
    const record = await this.index.get(digest)
    if (record === undefined) return undefined
    const release = this.leases.acquire(digest)
    const path = blobPath(this.layout, digest)
    let file: FileHandle
    try {
      file = await open(path, 'r')
    } catch (err) {
      release()
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new StoreUnavailableError(digest, this.init.dir, err)
      // Unless a new commit put the blob back meanwhile.
      await this.exclusive(digest, async () => {
        if (sameCommit(await this.index.get(digest), record) && !await exists(path)) await this.forget(digest, record)
      })
      return undefined
    }
    const info = await file.stat()
    if (info.size !== record.size || info.mtimeMs !== record.mtimeMs) {
      const actual = await hashFile(path)
      if (actual !== digest || info.size !== record.size) {
        await file.close()
        release()
        const removed = await this.exclusive(digest, async () => {
          // A commit since the record was read replaced the file: that one is verified.
          if (!sameCommit(await this.index.get(digest), record)) return false
          await rm(path, { force: true })
          await this.forget(digest, record)
          return true
        })
        if (removed) {
          this.init.log.error({ digest, expectedSize: record.size, size: info.size }, 'blob file corrupted on disk; removed, it will be fetched again')
          this.init.onCorrupt?.(digest)
        }
        return undefined
      }
      await this.exclusive(digest, async () => {
        const current = await this.index.get(digest)
        if (!sameCommit(current, record)) return
        record.mtimeMs = current.mtimeMs = info.mtimeMs
        await this.index.put(digest, current)
      })
    }
    await this.touch(digest, record)
    let closed = false
    const stream = (start?: number, end?: number): ReadStream => createReadStream(path, {
      fd: file, start, end, autoClose: false, highWaterMark: READ_CHUNK
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

  /**
   * Starts writing `digest`; the lease keeps eviction away until commit or abort. Without a
   * digest, the content's own sha256 becomes it (`BlobWriter.keyByContent` before `commit`).
   */
  async createWriter (digest?: Digest): Promise<BlobWriter> {
    if (digest === undefined) return await BlobWriter.create(UNKEYED, join(this.layout.tmp, `new-${randomUUID()}`), this.init.dir, () => {})
    const release = this.leases.acquire(digest)
    try {
      return await BlobWriter.create(digest, join(this.layout.tmp, `${digest.slice(7, 23)}-${randomUUID()}`), this.init.dir, release)
    } catch (err) {
      release()
      throw err
    }
  }

  /**
   * Stores a small body that is already in memory (manifests, API responses): write, verify,
   * commit. On a full filesystem, older blobs make room once (see `makeRoom`).
   * @throws StoreFullError when there is still no room (the store is then marked full)
   */
  async put (digest: Digest, body: Uint8Array, source: string, meta: { mediaType?: string } = {}): Promise<BlobRecord> {
    for (let tries = 1; ; tries++) {
      try {
        const writer = await this.createWriter(digest)
        try {
          await writer.write(body)
        } catch (err) {
          await writer.abort()
          throw err
        }
        return await this.commit(writer, source, meta)
      } catch (err) {
        if (!(err instanceof StoreFullError)) throw err
        if (tries > 1 || await this.makeRoom(body.byteLength) === 0) {
          this.markFull(err)
          throw err
        }
      }
    }
  }

  /** Verifies, moves into place and indexes what `writer` wrote. */
  async commit (writer: BlobWriter, source: string, meta: { mediaType?: string } = {}): Promise<BlobRecord> {
    const path = blobPath(this.layout, writer.digest)
    const { record, size } = await this.exclusive(writer.digest, async () => {
      const { size, mtimeMs } = await writer.commit(path, source)
      const previous = await this.index.get(writer.digest)
      const now = this.clock.now()
      const record: BlobRecord = {
        size, mtimeMs, createdAt: previous?.createdAt ?? now, accessedAt: now,
        ...(meta.mediaType !== undefined ? { mediaType: meta.mediaType } : {}),
        ...(previous?.pinned === true ? { pinned: true } : {}),
        ...(previous?.keepUntil !== undefined ? { keepUntil: previous.keepUntil } : {})
      }
      try {
        await this.index.put(writer.digest, record)
      } catch (err) {
        // An unindexed file would hold space the size account can't see until the next start.
        if (previous === undefined) await rm(path, { force: true })
        throw writeError(err, this.init.dir)
      }
      this.total += size - (previous?.size ?? 0)
      return { record, size }
    })
    this.spaceReturned()
    this.init.onCommit?.(writer.digest, size)
    if (this.total > this.init.policy.maxSize * this.init.policy.highWatermark) void this.evict().catch(() => {})
    return record
  }

  /**
   * A write failed with StoreFullError: remembered for `space()` (and warned about once per
   * episode) until a blob commits or space returns.
   */
  markFull (err: StoreFullError): void {
    if (this.fullSince === undefined) this.init.log.warn({ err: err.message, size: this.total }, 'store filesystem full')
    this.fullSince = this.clock.now()
  }

  /** Whether the store is full (see StoreSpace); reads the filesystem's free space (statfs). */
  async space (): Promise<StoreSpace> {
    let free: number | undefined
    try {
      const fs = await statfs(this.init.dir)
      free = fs.bavail * fs.bsize
    } catch {}
    if (this.fullSince !== undefined && free !== undefined && free >= FULL_CLEAR_BYTES) this.spaceReturned()
    return { full: this.fullSince !== undefined, free }
  }

  /**
   * The filesystem is full: removes least recently used blobs that are not pinned or in use,
   * whatever their age, until `bytes` are freed or none is left (CACHE_MAX_SIZE larger than the
   * filesystem, or other files on it). Returns the bytes freed.
   */
  async makeRoom (bytes: number): Promise<number> {
    const removed = await this.removeVictims(planRoom(await this.candidates(), bytes, d => this.leases.held(d), this.clock.now()))
    const freed = removed.reduce((n, { record }) => n + record.size, 0)
    if (freed > 0) this.init.log.warn({ freed, wanted: bytes, size: this.total }, 'store filesystem full; evicted least recently used blobs to make room')
    return freed
  }

  async delete (digest: Digest): Promise<boolean> {
    return await this.exclusive(digest, async () => {
      const record = await this.index.get(digest)
      if (record === undefined) return false
      await rm(blobPath(this.layout, digest), { force: true })
      await this.forget(digest, record)
      return true
    })
  }

  async setPinned (digest: Digest, pinned: boolean): Promise<boolean> {
    return await this.exclusive(digest, async () => {
      const record = await this.index.get(digest)
      if (record === undefined) return false
      if (pinned) record.pinned = true
      else delete record.pinned
      await this.index.put(digest, record)
      return true
    })
  }

  /**
   * Keeps `digest` against eviction until `until` (ms since the epoch; a later time than one
   * already set wins). False when it is not stored.
   */
  async keepUntil (digest: Digest, until: number): Promise<boolean> {
    return await this.exclusive(digest, async () => {
      const record = await this.index.get(digest)
      if (record === undefined) return false
      if ((record.keepUntil ?? 0) >= until) return true
      record.keepUntil = until
      await this.index.put(digest, record)
      return true
    })
  }

  /** Bytes of the blobs kept against eviction now (`keepUntil`): what no eviction can free. */
  async keptBytes (): Promise<number> {
    const now = this.clock.now()
    let bytes = 0
    for await (const [, record] of this.entries()) if ((record.keepUntil ?? 0) > now) bytes += record.size
    return bytes
  }

  async * entries (): AsyncGenerator<[Digest, BlobRecord]> {
    for await (const [key, record] of this.index.iterator()) yield [key as Digest, record]
  }

  /**
   * Applies the eviction policy (SPEC 3.5); `force` prunes to the low watermark even when the
   * store is below the high one (`p2p-cache gc`). Returns the number of blobs removed.
   */
  async evict (force = false): Promise<number> {
    if (this.evicting !== undefined) return await this.evicting
    this.evicting = this.runEviction(force).finally(() => { this.evicting = undefined })
    return await this.evicting
  }

  /** Removes every blob that is not in use (DELETE /api/cache). */
  async clear (): Promise<number> {
    let removed = 0
    for await (const [digest] of this.entries()) {
      if (this.leases.held(digest)) continue
      if (await this.delete(digest)) removed++
    }
    return removed
  }

  async close (): Promise<void> {
    await this.evicting?.catch(() => {})
    await this.db.close()
  }

  private async runEviction (force: boolean): Promise<number> {
    const plan = planEviction(await this.candidates(), this.total, this.init.policy, this.clock.now(), d => this.leases.held(d), force)
    if (plan.overrodeMinAge) {
      this.init.log.warn({ size: this.total, maxSize: this.init.policy.maxSize },
        'store is over CACHE_MAX_SIZE with only recently used blobs; evicting some of them — raise CACHE_MAX_SIZE if this repeats')
    }
    const removed = await this.removeVictims(plan.victims)
    for (const { digest, record } of removed) this.init.log.info({ digest, size: record.size }, 'evicted')
    return removed.length
  }

  /** Every indexed blob with its record: what eviction chooses from. */
  private async candidates (): Promise<Candidate[]> {
    const candidates: Candidate[] = []
    for await (const [digest, record] of this.entries()) candidates.push({ digest, record })
    return candidates
  }

  /** Deletes the `victims` still not in use (each counted as an eviction); returns those removed. */
  private async removeVictims (victims: Candidate[]): Promise<Candidate[]> {
    const removed: Candidate[] = []
    for (const victim of victims) {
      if (this.leases.held(victim.digest) || !await this.delete(victim.digest)) continue
      removed.push(victim)
      this.init.onEvict?.(victim.digest, victim.record.size)
    }
    return removed
  }

  /** Records the access for LRU; a hit is served even when the index can't be written (full disk). */
  private async touch (digest: Digest, record: BlobRecord): Promise<void> {
    const now = this.clock.now()
    if (now - record.accessedAt < ACCESS_TIME_RESOLUTION_MS) return
    await this.exclusive(digest, async () => {
      // Not over a delete or a newer commit done meanwhile.
      const current = await this.index.get(digest)
      if (!sameCommit(current, record)) return
      record.accessedAt = current.accessedAt = now
      await this.index.put(digest, current)
    }).catch((err: Error) => {
      this.init.log.debug({ digest, err: err.message }, 'access time not recorded')
    })
  }

  /**
   * Runs `fn` with no other index change of `digest` in between: the size account sees each
   * commit and removal once, and nothing writes back a record another caller removed.
   */
  private async exclusive<T> (digest: Digest, fn: () => Promise<T>): Promise<T> {
    const before = this.changing.get(digest)
    let done!: () => void
    const mine = new Promise<void>(resolve => { done = resolve })
    this.changing.set(digest, mine)
    try {
      await before
      return await fn()
    } finally {
      done()
      if (this.changing.get(digest) === mine) this.changing.delete(digest)
    }
  }

  private spaceReturned (): void {
    if (this.fullSince === undefined) return
    this.fullSince = undefined
    this.init.log.info({ size: this.total }, 'store filesystem has room again')
  }

  /** Drops the record (its file is gone); callers hold `exclusive(digest)`. */
  private async forget (digest: Digest, record: BlobRecord): Promise<void> {
    await this.index.del(digest)
    this.total -= record.size
    this.init.onDelete?.(digest)
  }
}

/** Whether `current` is still the commit `record` was read from (not removed, not written again). */
function sameCommit (current: BlobRecord | undefined, record: BlobRecord): current is BlobRecord {
  return current !== undefined && current.size === record.size && current.mtimeMs === record.mtimeMs
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}
