import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Clock } from '../../../src/clock/clock.js'
import { BlobStore, type BlobStoreEvents } from '../../../src/store/blob-store.js'
import type { EvictionPolicy } from '../../../src/store/eviction.js'
import { FakeClock } from './clock.js'
import { silentLog } from './log.js'

/** Small bounds: 1 MB, evicting from 90 % down to 50 %, no minimum age. */
export const TEST_POLICY: EvictionPolicy = { maxSize: 1_000_000, highWatermark: 0.9, lowWatermark: 0.5, minAgeMs: 0 }

export interface TestStoreOptions extends BlobStoreEvents {
  /** Overrides of TEST_POLICY. */
  policy?: Partial<EvictionPolicy>
  /** Defaults to a new FakeClock (returned as `clock`). */
  clock?: Clock
  /** Defaults to a silent logger. */
  log?: Logger
}

/** A real BlobStore on its own temporary directory. */
export interface TestStore {
  /** The open store; replaced by `reopen`. */
  store: BlobStore
  /** CACHE_DIR of the store (under os.tmpdir()), removed by `dispose`. */
  dir: string
  /** The store's clock: move a FakeClock to age its blobs. */
  clock: Clock
  /** Closes the store and opens it again on the same directory (start-up reconcile runs). */
  reopen: () => Promise<BlobStore>
  /** Closes the store and removes its directory; safe to call more than once. */
  dispose: () => Promise<void>
}

/**
 * Opens a real BlobStore (files and level index) on a fresh temporary directory, with a silent
 * logger, small policy values (TEST_POLICY) and a FakeClock. Call `dispose()` in after/afterEach
 * (or a finally): it closes the index and removes the directory.
 *
 *   const t = await openTestStore({ policy: { maxSize: 10_000 } })
 *   try { await t.store.put(sha256Digest(body), body, 'test') } finally { await t.dispose() }
 */
export async function openTestStore (options: TestStoreOptions = {}): Promise<TestStore> {
  const { policy, clock = new FakeClock(), log = silentLog(), ...events } = options
  const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-store-'))
  const init = { ...events, dir, log, clock, policy: { ...TEST_POLICY, ...policy } }
  let store: BlobStore
  try {
    store = await BlobStore.open(init)
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  let closed = false
  const t: TestStore = {
    store,
    dir,
    clock,
    reopen: async () => {
      await t.store.close()
      t.store = await BlobStore.open(init)
      return t.store
    },
    dispose: async () => {
      if (!closed) {
        closed = true
        await t.store.close().catch(() => {})
      }
      await rm(dir, { recursive: true, force: true })
    }
  }
  return t
}
