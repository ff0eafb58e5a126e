import type { Logger } from 'pino'
import type { BucketTier } from '../bucket/bucket-tier.js'
import type { Config } from '../config/options.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { Stats } from '../metrics/stats.js'
import type { ProxyCa } from '../proxy/ca.js'
import { guardedLookup } from '../proxy/destination.js'
import { DownloadIntercept, type UrlRecord } from '../proxy/download-intercept.js'
import { ProxyServer } from '../proxy/proxy-server.js'
import { ProxyUpstreams } from '../proxy/proxy-upstreams.js'
import { RegistryIntercept } from '../proxy/registry-intercept.js'
import type { RecordTable } from '../records/swarm-records.js'
import type { RegistryRoutes } from '../registry/routes.js'
import type { BlobResolver } from '../resolver/blob-resolver.js'
import type { BlobStore } from '../store/blob-store.js'
import type { loadUpstreamCa } from '../upstream/trust.js'
import type { RegistryClients } from './registry-clients.js'

/** What the proxy is built on. */
export interface ProxyParts {
  ca: ProxyCa
  clients: RegistryClients
  registry: RegistryRoutes
  blobs: BlobResolver
  store: BlobStore
  privateStore: BlobStore | undefined
  urlRecords: RecordTable<UrlRecord>
  bucket: BucketTier | undefined
  upstreamCa: Awaited<ReturnType<typeof loadUpstreamCa>>
  /** The sidecar's own ports, which the proxy never connects back into (filled in as they listen). */
  ownPorts: number[]
  stats: Stats
}

/**
 * The forward proxy (CACHE_PROXY_ADDR): intercepted registries go through the registry front,
 * downloads matching CACHE_PROXY_PATTERNS through the blob resolver. Registries
 * CACHE_REGISTRY_UPSTREAMS does not name get a client of their own, whose connections (and
 * redirects) are guarded as the proxy's are. Not listening yet: see `listen`.
 */
export function proxyServer (config: Config, life: Lifecycle, parts: ProxyParts, log: Logger): ProxyServer {
  const { clients, ownPorts, stats } = parts
  const upstreams = new ProxyUpstreams({
    configured: clients.configured,
    make: (upstream, credential) =>
      clients.make(upstream, credential, guardedLookup(upstream.url.port === '' ? 443 : Number(upstream.url.port), () => ownPorts)),
    credential: clients.credential
  })
  life.add('proxy upstreams', async () => {
    await upstreams.close()
  })
  return new ProxyServer({
    intercept: config.proxyIntercept,
    allow: config.proxyAllow,
    ca: parts.ca,
    ownPorts: () => ownPorts,
    upstreamCa: parts.upstreamCa,
    routes: [
      new RegistryIntercept({ upstreams, registry: parts.registry, privateStore: parts.privateStore, log }),
      new DownloadIntercept({
        patterns: config.proxyPatterns,
        upstreams,
        blobs: parts.blobs,
        store: parts.store,
        records: parts.urlRecords,
        bucket: parts.bucket,
        stats,
        log
      })
    ],
    stats,
    log
  })
}
