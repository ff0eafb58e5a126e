import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import type { Logger } from 'pino'
import type { Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import { OPEN_ROOM_BYTES } from './constants.js'
import { StoreOpenError, isNoSpace } from './errors.js'
import { storeLayout, type StoreLayout } from './layout.js'
import { freeForOpen, reconcile, type BlobIndex } from './reconcile.js'
import type { BlobRecord } from './record.js'

/** A store directory opened by `openStore`: its index is open (and locked) and agrees with the files. */
export interface OpenedStore {
  layout: StoreLayout
  /** The level database under index/ (blob records, and the other modules' sublevels). */
  db: Level<string, unknown>
  /** The blob records (the `blobs` sublevel of `db`). */
  index: BlobIndex
  /** Bytes of the blobs indexed. */
  size: number
  /** When the filesystem was found full at open (ms since the epoch); undefined when it was not. */
  fullSince: number | undefined
}

/**
 * Opens (creating) the store under `dir`: creates its directories, opens the index (which
 * LevelDB locks against a second process), then reconciles index and files (docs/design.md §3.5) and sums
 * the size. On a full filesystem, where the index can't open, cached blobs are removed once to
 * make room (see freeForOpen) and the store starts out full.
 * @throws StoreOpenError when the directory can't be written or another process holds the index
 */
export async function openStore (dir: string, log: Logger, clock: Clock): Promise<OpenedStore> {
  const layout = storeLayout(dir)
  for (const path of [layout.blobs, layout.tmp]) {
    try {
      await mkdir(path, { recursive: true })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      throw new StoreOpenError(
        `CACHE_DIR=${dir}: cannot create ${path} (${code}); give the sidecar a writable directory (a volume) with CACHE_DIR`,
        { cause: err }
      )
    }
  }
  let db = newIndexDb(layout)
  let index = blobIndex(db)
  let freedAtOpen: { removed: Digest[], freed: number } | undefined
  for (;;) {
    try {
      await db.open()
      break
    } catch (err) {
      if (isNoSpace(err) && freedAtOpen === undefined) {
        // A sidecar that can't start fails every job on the host: cached blobs make room.
        freedAtOpen = await freeForOpen(layout, OPEN_ROOM_BYTES)
        // A level instance whose open failed stays unusable: a new one opens the same files.
        if (freedAtOpen.freed > 0) {
          db = newIndexDb(layout)
          index = blobIndex(db)
          continue
        }
      }
      const locked = (err as { cause?: { code?: unknown } }).cause?.code === 'LEVEL_LOCKED'
      throw new StoreOpenError(
        locked
          ? `CACHE_DIR=${dir} is in use by another p2p-cache process (its index is locked); stop that process, or give this one its own CACHE_DIR`
          : isNoSpace(err)
          ? `CACHE_DIR=${dir}: the filesystem is full and no cached blob is left to remove; free space there, or give the sidecar its own volume`
          : `CACHE_DIR=${dir}: cannot open the index (${(err as Error).message}); check the directory's permissions and free space`,
        { cause: err }
      )
    }
  }
  let fullSince: number | undefined
  if (freedAtOpen !== undefined) {
    log.warn(
      { removed: freedAtOpen.removed, freed: freedAtOpen.freed },
      'store filesystem full at start; removed the least recently written cached blobs to open the index'
    )
    fullSince = clock.now()
  }
  const report = await reconcile(layout, index, clock.now())
  let size = 0
  for await (const record of index.values()) size += record.size
  log.info({ ...report, size }, 'store opened')
  return { layout, db, index, size, fullSince }
}

/** A level instance on the index directory, not opened yet. */
function newIndexDb (layout: StoreLayout): Level<string, unknown> {
  return new Level<string, unknown>(layout.index, { valueEncoding: 'json' })
}

/** The blob records' sublevel of `db`. */
function blobIndex (db: Level<string, unknown>): BlobIndex {
  return db.sublevel<string, BlobRecord>('blobs', { valueEncoding: 'json' })
}
