import type { Level } from 'level'
import type { Logger } from 'pino'
import { systemClock, type Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import { BlobCommitter } from './blob-committer.js'
import { BlobOpener, type BlobHandle } from './blob-opener.js'
import { BlobCatalog } from './catalog.js'
import { StoreFullError } from './errors.js'
import type { EvictionPolicy } from './eviction.js'
import { Evictor } from './evictor.js'
import type { StoreLayout } from './layout.js'
import { Leases } from './leases.js'
import { openStore, type OpenedStore } from './open-store.js'
import { Protection } from './protection.js'
import type { BlobRecord } from './record.js'
import type { StoreAdmin, StoreKeeping, StoreReader, StoreWriter } from './roles.js'
import { SpaceAccount, type StoreSpace } from './space-account.js'
import type { BlobWriter } from './writer.js'

export type { BlobHandle } from './blob-opener.js'
export type { StoreSpace } from './space-account.js'

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

/**
 * Content-addressed blob files plus a level index (docs/design.md §3.5). All mutation goes through
 * here so the size account, leases and eviction see every change. A facade over its parts:
 * the catalog (index, one change per digest at a time), reading (BlobOpener), writing
 * (BlobCommitter), the space account and full state, eviction (Evictor) and protection
 * (pins, keep-until). Callers should depend on the role they use (roles.ts), not on this class.
 */
export class BlobStore implements StoreReader, StoreWriter, StoreKeeping, StoreAdmin {
  readonly layout: StoreLayout
  readonly db: Level<string, unknown>
  private readonly catalog: BlobCatalog
  private readonly account: SpaceAccount
  private readonly opener: BlobOpener
  private readonly committer: BlobCommitter
  private readonly evictor: Evictor
  private readonly protection: Protection

  private constructor (private readonly init: BlobStoreInit, clock: Clock, opened: OpenedStore) {
    const { dir, log, policy } = init
    const { layout, index } = opened
    this.layout = layout
    this.db = opened.db
    // Blobs being read or written: eviction skips them.
    const leases = new Leases()
    this.account = new SpaceAccount({ dir, log, clock, size: opened.size, fullSince: opened.fullSince })
    this.catalog = new BlobCatalog({ layout, index, space: this.account, onDelete: init.onDelete })
    this.evictor = new Evictor({ policy, catalog: this.catalog, leases, space: this.account, clock, log, onEvict: init.onEvict })
    this.opener = new BlobOpener({ dir, layout, catalog: this.catalog, leases, clock, log, onCorrupt: init.onCorrupt })
    this.committer = new BlobCommitter({
      dir,
      layout,
      catalog: this.catalog,
      leases,
      space: this.account,
      evictor: this.evictor,
      clock,
      onCommit: init.onCommit
    })
    this.protection = new Protection({ catalog: this.catalog, clock })
  }

  /**
   * Opens (creating) the store under `init.dir` and reconciles index and files (docs/design.md §3.5).
   * @throws StoreOpenError when the directory can't be written or another process holds the index
   */
  static async open (init: BlobStoreInit): Promise<BlobStore> {
    const clock = init.clock ?? systemClock
    return new BlobStore(init, clock, await openStore(init.dir, init.log, clock))
  }

  /** The configured bound (CACHE_MAX_SIZE): no single blob can be larger. */
  get maxSize (): number {
    return this.init.policy.maxSize
  }

  /** Bytes of the stored blobs. */
  get size (): number {
    return this.account.size
  }

  /** A write failed for want of space and nothing has committed since (`space()` also rechecks the filesystem). */
  get full (): boolean {
    return this.account.full
  }

  get policy (): EvictionPolicy {
    return this.init.policy
  }

  /** The record of `digest`; undefined when it is not stored. */
  async stat (digest: Digest): Promise<BlobRecord | undefined> {
    return await this.catalog.get(digest)
  }

  /**
   * Opens a blob for reading under a lease. A file changed since it was committed is re-hashed
   * first; if it no longer matches it is deleted and the blob is reported missing.
   * @throws StoreUnavailableError when the file exists but can't be opened now (EMFILE...): the record stays
   */
  async openRead (digest: Digest): Promise<BlobHandle | undefined> {
    return await this.opener.open(digest)
  }

  /**
   * Starts writing `digest`; the lease keeps eviction away until commit or abort. Without a
   * digest, the content's own sha256 becomes it (`BlobWriter.keyByContent` before `commit`).
   */
  async createWriter (digest?: Digest): Promise<BlobWriter> {
    return await this.committer.createWriter(digest)
  }

  /**
   * Stores a small body that is already in memory (manifests, API responses): write, verify,
   * commit. On a full filesystem, older blobs make room once (see `makeRoom`).
   * @throws StoreFullError when there is still no room (the store is then marked full)
   */
  async put (digest: Digest, body: Uint8Array, source: string, meta: { mediaType?: string } = {}): Promise<BlobRecord> {
    // Through this object's own methods: a full filesystem is simulated in tests by replacing `createWriter`.
    for (let tries = 1;; tries++) {
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
    return await this.committer.commit(writer, source, meta)
  }

  /**
   * A write failed with StoreFullError: remembered for `space()` (and warned about once per
   * episode) until a blob commits or space returns.
   */
  markFull (err: StoreFullError): void {
    this.account.markFull(err)
  }

  /** Whether the store is full (see StoreSpace); reads the filesystem's free space (statfs). */
  async space (): Promise<StoreSpace> {
    return await this.account.space()
  }

  /**
   * The filesystem is full: removes least recently used blobs that are not pinned or in use,
   * whatever their age, until `bytes` are freed or none is left (CACHE_MAX_SIZE larger than the
   * filesystem, or other files on it). Returns the bytes freed.
   */
  async makeRoom (bytes: number): Promise<number> {
    return await this.evictor.makeRoom(bytes)
  }

  /** Removes file and record of `digest`, in use or not; false when it was not stored. */
  async delete (digest: Digest): Promise<boolean> {
    return await this.catalog.delete(digest)
  }

  /** Pins `digest` against eviction, or lifts the pin; false when it is not stored. */
  async setPinned (digest: Digest, pinned: boolean): Promise<boolean> {
    return await this.protection.setPinned(digest, pinned)
  }

  /**
   * Keeps `digest` against eviction until `until` (ms since the epoch; a later time than one
   * already set wins). False when it is not stored.
   */
  async keepUntil (digest: Digest, until: number): Promise<boolean> {
    return await this.protection.keepUntil(digest, until)
  }

  /** Bytes of the blobs kept against eviction now (`keepUntil`): what no eviction can free. */
  async keptBytes (): Promise<number> {
    return await this.protection.keptBytes()
  }

  /** Every stored blob with its record. */
  entries (): AsyncGenerator<[Digest, BlobRecord]> {
    return this.catalog.entries()
  }

  /**
   * Applies the eviction policy (docs/design.md §3.5); `force` prunes to the low watermark even when the
   * store is below the high one (`p2p-cache gc`). Returns the number of blobs removed.
   */
  async evict (force = false): Promise<number> {
    return await this.evictor.evict(force)
  }

  /** Removes every blob that is not in use (DELETE /api/cache). */
  async clear (): Promise<number> {
    return await this.evictor.clear()
  }

  /** Waits for a running eviction, then closes the index (and its lock on CACHE_DIR). */
  async close (): Promise<void> {
    await this.evictor.settled()
    await this.db.close()
  }
}
