import { loadConfig, type ConfigSource } from '../config/load.js'
import { formatBytes } from '../config/units.js'
import { createLogger } from '../log/logger.js'
import { BlobStore } from '../store/blob-store.js'
import { SidecarClient } from '../admin/client/client.js'
import { SidecarStatusError, SidecarUnreachableError } from '../admin/client/errors.js'
import { localSidecarUrl } from './sidecar-url.js'

/**
 * Applies the prune policy now. A running sidecar owns the store (level holds a lock), so it is
 * asked over HTTP (with CACHE_ADMIN_TOKEN, which a sidecar on another host requires); with none
 * listening on the configured address, the store is opened here. With --url a sidecar is
 * required: nothing there is an error, not a reason to prune some local directory.
 */
export async function gcCommand (flags: ConfigSource & { url?: string }): Promise<void> {
  const config = loadConfig(flags)
  const base = flags.url ?? localSidecarUrl()
  try {
    const { removed, currentSize } = await new SidecarClient(base, { adminToken: config.adminToken }).gc()
    process.stdout.write(`gc via sidecar at ${base}: removed ${removed} blobs, store now ${formatBytes(currentSize)}\n`)
    return
  } catch (err) {
    if (err instanceof SidecarStatusError) throw new Error(`sidecar at ${base} refused gc: ${err.detail ?? err.status}`)
    if (!(err instanceof SidecarUnreachableError)) throw err
    // gc has always failed with the transport's own words and exit 1 here (stats says
    // "cannot reach a sidecar" with exit 2): kept, as scripts may test for it.
    if (flags.url !== undefined || err.code !== 'ECONNREFUSED') throw err.cause
  }
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel)
  const store = await BlobStore.open({
    dir: config.dir,
    log,
    policy: {
      maxSize: config.maxSize,
      highWatermark: config.evictHighWatermark,
      lowWatermark: config.evictLowWatermark,
      minAgeMs: config.evictMinAge
    }
  })
  try {
    const removed = await store.evict(true)
    process.stdout.write(`gc on ${config.dir}: removed ${removed} blobs, store now ${formatBytes(store.size)}\n`)
  } finally {
    await store.close()
  }
}
