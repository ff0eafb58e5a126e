import type { Logger } from 'pino'
import type { ApiRecords } from '../apicache/records.js'
import { ApiResolver } from '../apicache/resolver.js'
import { ApiRoutes } from '../apicache/routes.js'
import { Scopes } from '../apicache/scope.js'
import type { Config } from '../config/options.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { Stats } from '../metrics/stats.js'
import type { PeerLookupInit } from '../resolver/peer-lookup.js'
import type { BlobStore } from '../store/blob-store.js'
import { ApiClient } from '../upstream/api-client.js'
import type { loadFleetCredentials } from '../upstream/fleet-credential.js'
import type { loadUpstreamCa } from '../upstream/trust.js'
import type { LateBound } from './late-bound.js'

/** What the API cache is built on. */
export interface ApiCacheParts {
  store: BlobStore
  records: ApiRecords
  /** This node's identity key: the API cache's credential scopes derive from it. */
  identity: Uint8Array
  fleet: ReturnType<typeof loadFleetCredentials>
  upstreamCa: Awaited<ReturnType<typeof loadUpstreamCa>>
  peers: PeerLookupInit | undefined
  stats: Stats
}

/**
 * The HTTP API cache (CACHE_API_UPSTREAMS): its upstream client (registered with `life`), the
 * resolver (set in `late` for the store's deletions) and the routes.
 */
export function apiCache (config: Config, life: Lifecycle, late: LateBound, parts: ApiCacheParts, log: Logger): ApiRoutes {
  const { stats } = parts
  const client = new ApiClient({
    upstreams: config.apiUpstreams,
    concurrency: config.apiConcurrency,
    timeoutMs: config.upstreamTimeout,
    onRateLimit: (upstream, authorization, remaining) => {
      stats.setApiRateLimit(upstream, late.api?.credentialLabel(upstream, authorization) ?? 'anon', remaining)
    },
    ca: parts.upstreamCa
  })
  life.add('api client', async () => {
    await client.close()
  })
  const resolver = new ApiResolver({
    client,
    store: parts.store,
    records: parts.records,
    scopes: new Scopes(parts.identity),
    fleet: parts.fleet,
    stats,
    maxBody: config.apiMaxBody,
    peers: parts.peers,
    log
  })
  late.api = resolver
  return new ApiRoutes({ client, resolver, stats, log })
}
