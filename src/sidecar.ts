import type { Server } from 'node:http'
import type { Logger } from 'pino'
import type { Config, HostPort } from './config/options.js'
import { BlobStore } from './store/blob-store.js'
import { Stats } from './metrics/stats.js'
import { RegistryClient } from './upstream/registry-client.js'
import { resolveCredentials } from './upstream/credentials.js'
import { TagCache } from './resolver/tag-cache.js'
import { BlobResolver } from './resolver/blob-resolver.js'
import { ManifestResolver } from './resolver/manifest-resolver.js'
import { RegistryRoutes } from './registry/routes.js'
import { UpstreamSet } from './registry/upstreams.js'
import { AdminRoutes } from './http/admin-routes.js'
import { createHttpServer, listen } from './http/server.js'

export interface Sidecar {
  httpAddr: HostPort
  store: BlobStore
  stats: Stats
  stop: () => Promise<void>
}

/** Wires the components for `serve`: route → resolver → (store | upstream) → store. */
export async function startSidecar (config: Config, log: Logger): Promise<Sidecar> {
  if (config.enableP2p) {
    log.warn('the peer-to-peer layer is not part of this build yet; running as a local pull-through cache (set CACHE_ENABLE_P2P=false to silence this)')
  }
  let ready = false
  let store: BlobStore | undefined = undefined
  const stats = new Stats({ currentSize: () => store?.size ?? 0, peersConnected: () => 0 })
  store = await BlobStore.open({
    dir: config.dir,
    log: log.child({ component: 'store' }),
    policy: {
      maxSize: config.maxSize,
      highWatermark: config.evictHighWatermark,
      lowWatermark: config.evictLowWatermark,
      minAgeMs: config.evictMinAge
    },
    onCommit: () => stats.inc('stores'),
    onEvict: () => stats.inc('evictions'),
    onCorrupt: () => stats.inc('errors')
  })
  const credentials = resolveCredentials(config.registryUpstreams, config.registryAuth, config.dockerConfig, log)
  const upstreams = new UpstreamSet(config.registryUpstreams.map(upstream => new RegistryClient({
    upstream,
    credential: credentials.get(upstream.name),
    timeoutMs: config.upstreamTimeout,
    log
  })))
  const resolverLog = log.child({ component: 'resolver' })
  const blobs = new BlobResolver({ store, stats, log: resolverLog })
  const registry = new RegistryRoutes({
    upstreams,
    blobs,
    manifests: new ManifestResolver({ store, tags: new TagCache(store.db), stats, log: resolverLog }),
    stats,
    log: log.child({ component: 'registry' })
  })
  const admin = new AdminRoutes({ store, stats, adminToken: config.adminToken, isReady: () => ready, log })
  const server: Server = createHttpServer([admin, registry], log)
  let httpAddr: HostPort
  try {
    httpAddr = await listen(server, config.httpAddr)
  } catch (err) {
    await store.close()
    await upstreams.close()
    throw err
  }
  ready = true
  log.info({ http: `${httpAddr.host}:${httpAddr.port}`, dir: config.dir, maxSize: config.maxSize, upstreams: config.registryUpstreams.map(u => `${u.name}=${u.url.origin}`) }, 'p2p-cache ready')

  const openStore = store
  return {
    httpAddr,
    store: openStore,
    stats,
    stop: async () => {
      ready = false
      await new Promise<void>(resolve => {
        server.close(() => resolve())
        server.closeIdleConnections()
        // In-flight downloads get a grace period, then sockets are cut.
        setTimeout(() => { server.closeAllConnections() }, 5_000).unref()
      })
      // Downloads outlive their clients (they warm the cache): let them commit before the index closes.
      await blobs.drain(10_000)
      await upstreams.close()
      await openStore.close()
    }
  }
}
