import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config/options.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { Stats } from '../metrics/stats.js'
import { ProxyCa } from '../proxy/ca.js'
import { PRIVATE_STORE_DIR, PRIVATE_STORE_SHARE } from '../proxy/constants.js'
import { BlobStore } from '../store/blob-store.js'
import type { LateBound } from './late-bound.js'

export interface Stores {
  /** The shared store: what the fleet's credentials or anonymous access fetched, announced to peers. */
  store: BlobStore
  /** What clients' own credentials read through the proxy: a store of its own, never announced (proxy on only). */
  privateStore: BlobStore | undefined
  /** The proxy's interception CA (proxy on only). */
  proxyCa: ProxyCa | undefined
}

/**
 * Opens the store (which takes CACHE_DIR's lock) and, with the proxy on, the proxy's CA and its
 * private store, each registered with `life` as it opens. The CA comes after the lock: a second
 * sidecar on the same dir stops at the lock, before it could make the first one's CA anew.
 * @throws StoreLockedError and the store's open errors; ProxyCa's certificate errors
 */
export async function openStores (config: Config, log: Logger, life: Lifecycle, late: LateBound, stats: Stats): Promise<Stores> {
  const policy = {
    maxSize: config.maxSize,
    highWatermark: config.evictHighWatermark,
    lowWatermark: config.evictLowWatermark,
    minAgeMs: config.evictMinAge
  }
  const store = await life.start('store', async () =>
    await BlobStore.open({
      dir: config.dir,
      log: log.child({ component: 'store' }),
      policy,
      onCommit: digest => {
        stats.inc('stores')
        late.swarm?.announce(digest)
      },
      onDelete: digest => {
        late.swarm?.forget(digest)
        late.api?.forgetBody(digest).catch(err =>
          log.warn({ digest, err: (err as Error).message }, 'could not drop the API records of a deleted body')
        )
      },
      onEvict: () => stats.inc('evictions'),
      onCorrupt: () => stats.inc('errors')
    }), async s => {
    await s.close()
  })
  if (config.proxyAddr === undefined) return { store, privateStore: undefined, proxyCa: undefined }
  const proxyCa = await ProxyCa.open({
    dir: config.dir,
    intercept: config.proxyIntercept,
    certFile: config.proxyCaCert,
    keyFile: config.proxyCaKey,
    log: log.child({ component: 'proxy' })
  })
  const privateStore = await life.start('private store', async () =>
    await BlobStore.open({
      dir: join(config.dir, PRIVATE_STORE_DIR),
      log: log.child({ component: 'store', store: 'private' }),
      policy: { ...policy, maxSize: Math.floor(config.maxSize * PRIVATE_STORE_SHARE) }
    }), async s => {
    await s.close()
  })
  return { store, privateStore, proxyCa }
}
