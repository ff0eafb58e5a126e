import { request } from 'undici'
import { loadConfig, type ConfigSource } from '../config/load.js'
import { formatBytes } from '../config/units.js'
import { createLogger } from '../log/logger.js'
import { BlobStore } from '../store/blob-store.js'
import { localSidecarUrl } from './sidecar-url.js'

/**
 * Applies the prune policy now. A running sidecar owns the store (level holds a lock), so it is
 * asked over HTTP; with none running, the store is opened here.
 */
export async function gcCommand (flags: ConfigSource & { url?: string }): Promise<void> {
  const config = loadConfig(flags)
  const base = flags.url ?? localSidecarUrl()
  try {
    const res = await request(new URL('/api/cache/gc', base), { method: 'POST', signal: AbortSignal.timeout(120_000) })
    const body = await res.body.json() as { removed?: number, current_size?: number, error?: string }
    if (res.statusCode !== 200) throw new Error(`sidecar at ${base} refused gc: ${body.error ?? res.statusCode}`)
    process.stdout.write(`gc via sidecar at ${base}: removed ${body.removed ?? 0} blobs, store now ${formatBytes(body.current_size ?? 0)}\n`)
    return
  } catch (err) {
    if (flags.url !== undefined || !isConnectionRefused(err)) throw err
  }
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel)
  const store = await BlobStore.open({
    dir: config.dir, log,
    policy: { maxSize: config.maxSize, highWatermark: config.evictHighWatermark, lowWatermark: config.evictLowWatermark, minAgeMs: config.evictMinAge }
  })
  try {
    const removed = await store.evict(true)
    process.stdout.write(`gc on ${config.dir}: removed ${removed} blobs, store now ${formatBytes(store.size)}\n`)
  } finally {
    await store.close()
  }
}

function isConnectionRefused (err: unknown): boolean {
  const e = err as { code?: string, cause?: { code?: string } }
  return e.code === 'ECONNREFUSED' || e.cause?.code === 'ECONNREFUSED'
}
