import type { Logger } from 'pino'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Config } from '../config/options.js'
import type { HostPort } from '../http/host-port.js'
import { Stats } from '../metrics/stats.js'
import { TagCache } from '../resolver/tag-cache.js'
import { ListCache } from '../resolver/list-cache.js'
import { BlobResolver } from '../resolver/blob-resolver.js'
import { ManifestResolver } from '../resolver/manifest-resolver.js'
import { RegistryRoutes } from '../registry/routes.js'
import { AdminRoutes } from '../admin/admin-routes.js'
import { ClientLog } from '../http/client-log.js'
import { createHttpServer, createHttpsServer } from '../http/server.js'
import { connectionBound, type HttpLimits } from '../http/limits.js'
import { loadTlsFiles } from '../http/tls.js'
import { loadOrCreateIdentity } from '../p2p/identity.js'
import { ApiRecords } from '../apicache/records.js'
import { loadFleetCredentials } from '../upstream/fleet-credential.js'
import type { Swarm } from '../p2p/swarm.js'
import type { PeerLookupInit } from '../resolver/peer-lookup.js'
import { urlRecordKind } from '../proxy/download-intercept.js'
import { SwarmRecords } from '../records/swarm-records.js'
import { handOff } from '../push/handoff.js'
import { HANDOFF_MAX_MS } from '../push/constants.js'
import { ActionsCacheRoutes } from '../actionscache/routes.js'
import { CacheUploads } from '../actionscache/cache-uploads.js'
import { cacheEntryKind } from '../actionscache/cache-entries.js'
import { SwarmBlobs } from '../resolver/swarm-blob.js'
import { loadUpstreamCa } from '../upstream/trust.js'
import { UPLOAD_DRAIN_MS } from '../bucket/constants.js'
import { Lifecycle } from '../lifecycle/lifecycle.js'
import type { BlobStore } from '../store/blob-store.js'
import type { LateBound } from './late-bound.js'
import { openStores } from './stores.js'
import { registryClients } from './registry-clients.js'
import { p2pInfo, startSwarm, storedKeys } from './swarm.js'
import { startBucket } from './bucket.js'
import { localNamespace } from './local-namespace.js'
import { apiCache } from './api-cache.js'
import { proxyServer } from './proxy.js'
import { listenAll } from './listeners.js'
import { DOWNLOAD_DRAIN_MS } from './constants.js'
import { Reachability } from './reachability.js'
import { RecentWarnings } from '../log/recent-warnings.js'
import { HitHistory } from '../ui/hit-history.js'
import { Status } from '../ui/status.js'
import { UiRoutes } from '../ui/ui-routes.js'
import { sidecarUrlFor } from '../http/sidecar-url.js'

export { P2pStartError } from './swarm.js'

export interface Sidecar {
  httpAddr: HostPort
  /** The HTTPS listener's address, when CACHE_HTTPS_ADDR is set. */
  httpsAddr: HostPort | undefined
  /** The forward proxy's address, when CACHE_PROXY_ADDR is set. */
  proxyAddr: HostPort | undefined
  store: BlobStore
  stats: Stats
  swarm: Swarm | undefined
  stop: () => Promise<void>
}

export interface StartOptions {
  /** Called with each part's name as it starts (see Lifecycle): tests inject a failure at a step. */
  onStep?: (name: string) => void
  /** Where the logger keeps the last warnings (createLogger's), for the status page. */
  warnings?: RecentWarnings
}

/**
 * Wires the components for `serve`: route → resolver → (store | peers | bucket | upstream) →
 * store. Parts start in order and stop in reverse (Lifecycle): on `stop`, and on a start that
 * fails half-way, which releases everything it had opened before it throws.
 * @throws ConfigError, P2pStartError, ListenError, the store's open errors
 */
export async function startSidecar (config: Config, log: Logger, opts: StartOptions = {}): Promise<Sidecar> {
  // Before anything opens: a bad certificate path stops start-up with nothing to undo.
  const tls = config.httpsAddr === undefined ? undefined : loadTlsFiles(config.tlsCert, config.tlsKey)
  const fleet = loadFleetCredentials(config.apiUpstreams, config.apiAuth, config.apiApp)
  const upstreamCa = await loadUpstreamCa(config.upstreamCaFile)
  const life = new Lifecycle(log, opts.onStep)
  try {
    return await wire(config, log, life, { tls, fleet, upstreamCa, warnings: opts.warnings ?? new RecentWarnings() })
  } catch (err) {
    await life.stop()
    throw err
  }
}

/** What startSidecar reads before anything opens. */
interface Preloaded {
  tls: ReturnType<typeof loadTlsFiles> | undefined
  fleet: ReturnType<typeof loadFleetCredentials>
  upstreamCa: Awaited<ReturnType<typeof loadUpstreamCa>>
  warnings: RecentWarnings
}

/** The layers bottom up: sources (store, upstreams, swarm, bucket), resolvers, fronts, listeners. */
async function wire (config: Config, log: Logger, life: Lifecycle, { tls, fleet, upstreamCa, warnings }: Preloaded): Promise<Sidecar> {
  let ready = false
  let shared: BlobStore | undefined
  const late: LateBound = {}
  const stats = new Stats({
    currentSize: () => shared?.size ?? 0,
    peersConnected: () => late.swarm?.peersConnected() ?? 0,
    storeFull: () => shared?.full ?? false,
    bucketQueue: () => late.writer?.depth ?? 0,
    maxSize: () => config.maxSize,
    downloads: () => late.blobs?.downloading ?? 0,
    uploads: () => late.swarm?.uploads ?? 0
  })
  // Sources.
  const { store, privateStore, proxyCa } = await openStores(config, log, life, late, stats)
  shared = store
  const clients = registryClients(config, log, life, stats, upstreamCa)
  const tags = new TagCache(store.db)
  const apiRecords = new ApiRecords(store.db)
  // One identity per node: the peer ID, and the key of the API cache's credential scopes.
  const privateKey = await loadOrCreateIdentity(config.dir, log)
  const self = peerIdFromPrivateKey(privateKey).toString()
  const swarm = !config.enableP2p ? undefined : await life.start('swarm', async () =>
    await startSwarm(config, privateKey, store, stats, {
      tags,
      apiRecords,
      // The resolver comes after the swarm (it needs it): peers asking before then find nothing in progress.
      records: async key => await late.records?.answer(key),
      inProgress: async (digest, options) => await late.blobs?.inProgress(digest, options),
      downloading: () => late.blobs?.downloading ?? 0,
      hold: async (request, from, options) =>
        late.keeper === undefined ? { status: 'refused', message: 'starting' } : await late.keeper.hold(request, from, options)
    }, log.child({ component: 'p2p' })), async s => {
    await s.stop()
  })
  late.swarm = swarm
  const bucketParts = startBucket(config, life, store, stats, log.child({ component: 'bucket' }))
  late.writer = bucketParts?.writer
  const bucket = bucketParts?.tier

  // Resolvers.
  const resolverLog = log.child({ component: 'resolver' })
  const peers: PeerLookupInit | undefined = swarm === undefined
    ? undefined
    : { swarm, lookupTimeoutMs: config.peerLookupTimeout, idleMs: config.peerFirstByteTimeout, stats, log: resolverLog }
  const blobs = new BlobResolver({ store, stats, log: resolverLog, peers, bucket })
  late.blobs = blobs
  const records = new SwarmRecords({ db: store.db, peers, bucket, log: resolverLog })
  late.records = records
  // A lying peer could poison URL records, tags or cache entries: they are shared only inside a private swarm.
  const shareRecords = config.swarmKey !== undefined
  const urlRecords = records.define(urlRecordKind(shareRecords))

  // Fronts.
  const clientLog = new ClientLog()
  const registry = new RegistryRoutes({
    upstreams: clients.upstreams,
    blobs,
    manifests: new ManifestResolver({ tags, stats, log: resolverLog, peers, blobs, bucket }),
    lists: new ListCache(store.db, { stats, log: resolverLog }),
    clients: clientLog,
    localNamespace: config.localNamespace,
    stats,
    log: log.child({ component: 'registry' })
  })
  const pushLog = log.child({ component: 'push' })
  const local = localNamespace(config, life, late, { store, blobs, records, peers, bucket, self, stats }, pushLog)
  // The Actions cache service: entries are swarm records, archives are blobs of the store.
  const cacheLog = log.child({ component: 'actions-cache' })
  const cacheUploads = new CacheUploads({ store, log: cacheLog })
  life.add('actions cache uploads', async () => {
    await cacheUploads.close()
  })
  const actionsCache = new ActionsCacheRoutes({
    entries: records.define(cacheEntryKind(shareRecords)),
    uploads: cacheUploads,
    blobs: new SwarmBlobs({ store, blobs }),
    self,
    provideNow: swarm === undefined ? undefined : async (keys, options) => {
      await swarm.provideNow(keys, options)
    },
    bucket,
    stats,
    log: cacheLog
  })
  const p2p = swarm === undefined ? undefined : p2pInfo(swarm, stats)
  const admin = new AdminRoutes({
    store,
    stats,
    adminToken: config.adminToken,
    isReady: () => ready,
    log,
    clients: clientLog,
    proxyCa: proxyCa?.certPem,
    privateStore,
    ...(p2p !== undefined ? { p2p } : {})
  })
  // The status page. The hit history copies five counters every 10 s from the start; the
  // reachability checks run only when a page asks, at most every 10 minutes.
  let httpUrl: string | undefined
  const history = new HitHistory(() => stats.counts)
  history.start()
  life.add('hit history', () => {
    history.stop()
  })
  const reachability = new Reachability(config, () => httpUrl, log.child({ component: 'ui' }))
  life.add('reachability', async () => {
    await reachability.stop()
  })
  const ui = new UiRoutes({
    status: new Status({
      stats,
      store,
      history,
      transfers: () => blobs.transfers(),
      ...(p2p !== undefined ? { p2p } : {}),
      reachability,
      warnings: () => warnings.list()
    }),
    log: log.child({ component: 'ui' })
  })
  const apiRoutes = apiCache(config, life, late, {
    store,
    records: apiRecords,
    identity: privateKey.raw,
    fleet,
    upstreamCa,
    peers,
    stats
  }, log.child({ component: 'apicache' }))
  // At shutdown, after the servers stopped taking requests and the downloads in flight committed
  // (registered after this, so stopped before): what only this node keeps of the local namespace
  // goes to a peer, while uploads to the bucket in flight get their grace.
  life.add('handoff', async () => {
    await Promise.all([
      swarm !== undefined
        ? handOff({ store, tags: local.tags, replicas: local.replicas, self, log: pushLog }, HANDOFF_MAX_MS)
        : undefined,
      bucketParts?.writer.drain(UPLOAD_DRAIN_MS)
    ])
  })
  // Downloads in flight get a grace period to commit before the index closes, then stop.
  life.add('downloads', async () => {
    await blobs.drain(DOWNLOAD_DRAIN_MS)
  })

  // Listeners.
  const routes = [admin, ui, local.registry, registry, actionsCache, apiRoutes]
  const limits: HttpLimits = {
    headerTimeoutMs: config.httpHeaderTimeout,
    idleTimeoutMs: config.httpIdleTimeout,
    stallTimeoutMs: config.httpStallTimeout,
    maxConnections: connectionBound(config.httpMaxConnections, tls === undefined ? 1 : 2, log)
  }
  // The sidecar's own ports, which the proxy never connects back into: the P2P ones now, the others as they listen.
  const ownPorts: number[] = [
    ...config.listenAddrs.flatMap(ma => /\/tcp\/(\d+)/.exec(ma.toString())?.slice(1).map(Number) ?? []),
    ...(typeof config.p2pDataPort === 'number' ? [config.p2pDataPort] : [])
  ]
  const proxy = proxyCa === undefined || config.proxyAddr === undefined
    ? undefined
    : {
      server: proxyServer(config, life, {
        ca: proxyCa,
        clients,
        registry,
        blobs,
        store,
        privateStore,
        urlRecords,
        bucket,
        upstreamCa,
        ownPorts,
        stats
      }, log.child({ component: 'proxy' })),
      addr: config.proxyAddr
    }
  const { httpAddr, httpsAddr, proxyAddr } = await listenAll(life, {
    http: { server: createHttpServer(routes, log, limits), addr: config.httpAddr },
    https: tls === undefined || config.httpsAddr === undefined
      ? undefined
      : { server: createHttpsServer(routes, tls, log, limits), addr: config.httpsAddr },
    proxy
  })
  httpUrl = sidecarUrlFor(httpAddr)
  life.add('status pages', () => {
    ui.close()
  })
  ownPorts.push(
    ...[httpAddr, httpsAddr, proxyAddr, swarm?.dataPort !== undefined ? { port: swarm.dataPort } : undefined].flatMap(a =>
      a === undefined ? [] : [a.port]
    )
  )
  // The first part to stop: /readyz answers 503 from then on.
  life.add('ready', () => {
    ready = false
  })
  ready = true
  // What is already stored is announced in the background: readiness doesn't wait for the DHT.
  // Tags too: after a restart, peers can still find who resolved one while the upstream is down.
  if (swarm !== undefined) swarm.announceAll(storedKeys(store, tags, records))
  log.info({
    http: `${httpAddr.host}:${httpAddr.port}`,
    ...(httpsAddr !== undefined ? { https: `${httpsAddr.host}:${httpsAddr.port}` } : {}),
    ...(proxyAddr !== undefined ? { proxy: `${proxyAddr.host}:${proxyAddr.port}` } : {}),
    dir: config.dir,
    maxSize: config.maxSize,
    upstreams: config.registryUpstreams.map(u => `${u.name}=${u.url.origin}`)
  }, 'p2p-cache ready')

  return {
    httpAddr,
    httpsAddr,
    proxyAddr,
    store,
    stats,
    swarm,
    stop: async () => {
      await life.stop()
    }
  }
}
