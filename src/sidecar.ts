import { join } from 'node:path'
import type { Server } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Logger } from 'pino'
import type { PrivateKey } from '@libp2p/interface'
import type { Config } from './config/options.js'
import type { Credential, Upstream } from './upstream/upstream.js'
import type { HostPort } from './http/host-port.js'
import type { LookupFunction } from 'node:net'
import { BlobStore } from './store/blob-store.js'
import { Stats } from './metrics/stats.js'
import { RegistryClient } from './upstream/registry-client.js'
import { credentialFor, loadDockerConfig, resolveCredentials } from './upstream/credentials.js'
import type { TagKey } from './oci/tag-key.js'
import { TagCache } from './resolver/tag-cache.js'
import { ListCache } from './resolver/list-cache.js'
import { BlobResolver } from './resolver/blob-resolver.js'
import { ManifestResolver } from './resolver/manifest-resolver.js'
import { RegistryRoutes } from './registry/routes.js'
import { registryApiHost, UpstreamSet } from './registry/upstreams.js'
import { AdminRoutes, type P2pInfo } from './admin/admin-routes.js'
import { ClientLog } from './http/client-log.js'
import { createHttpServer, createHttpsServer, listen } from './http/server.js'
import { connectionBound, type HttpLimits } from './http/limits.js'
import { loadTlsFiles } from './http/tls.js'
import { loadOrCreateIdentity } from './p2p/identity.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ApiRoutes } from './apicache/routes.js'
import { ApiResolver } from './apicache/resolver.js'
import { ApiRecords } from './apicache/records.js'
import { Scopes } from './apicache/scope.js'
import { ApiClient } from './upstream/api-client.js'
import { loadFleetCredentials } from './upstream/fleet-credential.js'
import { Swarm, type SwarmComponents } from './p2p/swarm.js'
import { DataListenError, dataChannelAddress } from './p2p/data/server.js'
import type { PeerLookupInit } from './resolver/peer-lookup.js'
import type { Digest } from './oci/digest.js'
import { ProxyCa } from './proxy/ca.js'
import { ProxyServer } from './proxy/proxy-server.js'
import { ProxyUpstreams } from './proxy/proxy-upstreams.js'
import { RegistryIntercept } from './proxy/registry-intercept.js'
import { DownloadIntercept, urlRecordKind } from './proxy/download-intercept.js'
import { SwarmRecords } from './records/swarm-records.js'
import { LocalRegistry, localTagKind } from './push/local-registry.js'
import { UploadSessions } from './push/upload-sessions.js'
import { Replicator } from './push/replicator.js'
import { ReplicaKeeper } from './push/replica-keeper.js'
import { handOff } from './push/handoff.js'
import { HANDOFF_MAX_MS } from './push/constants.js'
import { ActionsCacheRoutes } from './actionscache/routes.js'
import { CacheUploads } from './actionscache/cache-uploads.js'
import { cacheEntryKind } from './actionscache/cache-entries.js'
import { SwarmBlobs } from './resolver/swarm-blob.js'
import type { RecordKey } from './keys/record-key.js'
import { guardedLookup } from './proxy/destination.js'
import { PRIVATE_STORE_DIR, PRIVATE_STORE_SHARE } from './proxy/constants.js'
import { loadUpstreamCa } from './upstream/trust.js'
import { Bucket } from './bucket/bucket.js'
import { BucketWriter } from './bucket/bucket-writer.js'
import { BucketTier } from './bucket/bucket-tier.js'
import { UPLOAD_DRAIN_MS } from './bucket/constants.js'
import { Lifecycle } from './lifecycle/lifecycle.js'
import { P2pCacheError, EXIT_USAGE } from './errors/p2p-cache-error.js'

/** At shutdown, downloads in flight get this long to commit before the index closes. */
const DOWNLOAD_DRAIN_MS = 10_000

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

export class P2pStartError extends P2pCacheError {
  constructor (message: string) {
    super(message, { exitCode: EXIT_USAGE })
  }
}

export interface StartOptions {
  /** Called with each part's name as it starts (see Lifecycle): tests inject a failure at a step. */
  onStep?: (name: string) => void
}

/**
 * Wires the components for `serve`: route → resolver → (store | peers | bucket | upstream) →
 * store. Parts start in order and stop in reverse (Lifecycle): on `stop`, and on a start that
 * fails half-way, which releases everything it had opened before it throws.
 */
export async function startSidecar (config: Config, log: Logger, opts: StartOptions = {}): Promise<Sidecar> {
  // Before anything opens: a bad certificate path stops start-up with nothing to undo.
  const tls = config.httpsAddr === undefined ? undefined : loadTlsFiles(config.tlsCert, config.tlsKey)
  const fleet = loadFleetCredentials(config.apiUpstreams, config.apiAuth, config.apiApp)
  const upstreamCa = await loadUpstreamCa(config.upstreamCaFile)
  const life = new Lifecycle(log, opts.onStep)
  try {
    return await wire(config, log, life, { tls, fleet, upstreamCa })
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
}

async function wire (config: Config, log: Logger, life: Lifecycle, { tls, fleet, upstreamCa }: Preloaded): Promise<Sidecar> {
  let ready = false
  let store: BlobStore | undefined = undefined
  let swarm: Swarm | undefined
  let api: ApiResolver | undefined
  let blobs: BlobResolver | undefined
  let swarmRecords: SwarmRecords | undefined
  let keeper: ReplicaKeeper | undefined
  let writer: BucketWriter | undefined
  const stats = new Stats({
    currentSize: () => store?.size ?? 0,
    peersConnected: () => swarm?.peersConnected() ?? 0,
    storeFull: () => store?.full ?? false,
    bucketQueue: () => writer?.depth ?? 0
  })
  const storePolicy = {
    maxSize: config.maxSize,
    highWatermark: config.evictHighWatermark,
    lowWatermark: config.evictLowWatermark,
    minAgeMs: config.evictMinAge
  }
  store = await life.start('store', async () =>
    await BlobStore.open({
      dir: config.dir,
      log: log.child({ component: 'store' }),
      policy: storePolicy,
      onCommit: digest => {
        stats.inc('stores')
        swarm?.announce(digest)
      },
      onDelete: digest => {
        swarm?.forget(digest)
        api?.forgetBody(digest).catch(err =>
          log.warn({ digest, err: (err as Error).message }, 'could not drop the API records of a deleted body')
        )
      },
      onEvict: () => stats.inc('evictions'),
      onCorrupt: () => stats.inc('errors')
    }), async s => {
    await s.close()
  })
  // After the store, which holds CACHE_DIR's lock: a second sidecar on the same dir stops there,
  // before it could make the first one's CA anew.
  const proxyLog = log.child({ component: 'proxy' })
  let proxyCa: ProxyCa | undefined
  // What clients' own credentials read through the proxy: a store of its own, never announced.
  let privateStore: BlobStore | undefined
  if (config.proxyAddr !== undefined) {
    proxyCa = await ProxyCa.open({
      dir: config.dir,
      intercept: config.proxyIntercept,
      certFile: config.proxyCaCert,
      keyFile: config.proxyCaKey,
      log: proxyLog
    })
    privateStore = await life.start('private store', async () =>
      await BlobStore.open({
        dir: join(config.dir, PRIVATE_STORE_DIR),
        log: log.child({ component: 'store', store: 'private' }),
        policy: { ...storePolicy, maxSize: Math.floor(config.maxSize * PRIVATE_STORE_SHARE) }
      }), async s => {
      await s.close()
    })
  }
  const intercepted = (name: string): boolean => config.proxyAddr !== undefined && config.proxyIntercept.matches(registryApiHost(name))
  // Read once: the mirror's upstreams now, the proxy's intercepted registries as they are first used.
  const dockerConfig = loadDockerConfig(config.dockerConfig, log)
  const credentials = resolveCredentials(config.registryUpstreams, config.registryAuth, dockerConfig, log, intercepted)
  const registryClient = (upstream: Upstream, credential: Credential | undefined, lookup?: LookupFunction): RegistryClient =>
    new RegistryClient({
      upstream,
      credential,
      timeoutMs: config.upstreamTimeout,
      log,
      onRateLimit: (name, limit) => {
        stats.setRegistryRateLimit(name, limit)
      },
      ca: upstreamCa,
      lookup
    })
  const registryClients = config.registryUpstreams.map(upstream => registryClient(upstream, credentials.get(upstream.name)))
  const upstreams = new UpstreamSet(registryClients)
  life.add('registry upstreams', async () => {
    await upstreams.close()
  })
  const tags = new TagCache(store.db)
  const apiRecords = new ApiRecords(store.db)
  // One identity per node: the peer ID, and the key of the API cache's credential scopes.
  const privateKey = await loadOrCreateIdentity(config.dir, log)
  if (config.enableP2p) {
    const open = store
    swarm = await life.start('swarm', async () =>
      await startSwarm(config, privateKey, open, stats, {
        tags,
        apiRecords,
        // The resolver comes after the swarm (it needs it): peers asking before then find nothing in progress.
        records: async key => await swarmRecords?.answer(key),
        inProgress: async (digest, options) => await blobs?.inProgress(digest, options),
        downloading: () => blobs?.downloading ?? 0,
        hold: async (request, from, options) =>
          keeper === undefined ? { status: 'refused', message: 'starting' } : await keeper.hold(request, from, options)
      }, log.child({ component: 'p2p' })), async s => {
      await s.stop()
    })
  }
  const resolverLog = log.child({ component: 'resolver' })
  const peers: PeerLookupInit | undefined = swarm === undefined
    ? undefined
    : { swarm, lookupTimeoutMs: config.peerLookupTimeout, idleMs: config.peerFirstByteTimeout, stats, log: resolverLog }
  const bucketTier = startBucket(config, store, stats, log.child({ component: 'bucket' }))
  if (bucketTier !== undefined) {
    life.add('bucket', () => {
      bucketTier.bucket.close()
    })
  }
  writer = bucketTier?.writer
  const bucket = bucketTier?.tier
  blobs = new BlobResolver({ store, stats, log: resolverLog, peers, bucket })
  swarmRecords = new SwarmRecords({ db: store.db, peers, bucket, log: resolverLog })
  // A lying peer could poison URL records: they are shared only inside a private swarm.
  const urlRecords = swarmRecords.define(urlRecordKind(config.swarmKey !== undefined))
  const openBlobs = blobs
  const clients = new ClientLog()
  const registry = new RegistryRoutes({
    upstreams,
    blobs,
    manifests: new ManifestResolver({ tags, stats, log: resolverLog, peers, blobs, bucket }),
    lists: new ListCache(store.db, { stats, log: resolverLog }),
    clients,
    localNamespace: config.localNamespace,
    stats,
    log: log.child({ component: 'registry' })
  })
  // The swarm-local namespace: pushes, and pulls of what was pushed here.
  const pushLog = log.child({ component: 'push' })
  const uploads = new UploadSessions({ store, log: pushLog })
  life.add('upload sessions', async () => {
    await uploads.close()
  })
  // Like URL records, a tag → digest record is a peer's word: shared only inside a private swarm.
  const localTags = swarmRecords.define(localTagKind(config.swarmKey !== undefined))
  const self = peerIdFromPrivateKey(privateKey).toString()
  const replicas = new Replicator({
    network: swarm,
    replicas: config.localReplicas,
    timeoutMs: config.localReplicaTimeout,
    ttlMs: config.localTtl,
    stats,
    log: pushLog
  })
  if (peers !== undefined && swarm !== undefined) {
    const announcing = swarm
    keeper = new ReplicaKeeper({
      store,
      records: swarmRecords,
      peers,
      provideNow: async (keys, options) => {
        await announcing.provideNow(keys, options)
      },
      ttlMs: config.localTtl,
      stats,
      log: pushLog
    })
  }
  if (swarm === undefined && (config.localReplicas ?? 0) > 0) {
    pushLog.warn(
      { replicas: config.localReplicas },
      'CACHE_LOCAL_REPLICAS is set but P2P is off (CACHE_ENABLE_P2P=false): pushes are kept on this node only'
    )
  }
  const local = new LocalRegistry({
    namespace: config.localNamespace,
    store,
    blobs,
    uploads,
    replicas,
    ttlMs: config.localTtl,
    tags: localTags,
    self,
    bucket,
    stats,
    log: pushLog
  })
  // The Actions cache service: entries are swarm records (shared inside a private swarm, like
  // tags), archives are blobs of the store.
  const cacheUploads = new CacheUploads({ store, log: log.child({ component: 'actions-cache' }) })
  life.add('actions cache uploads', async () => {
    await cacheUploads.close()
  })
  const actionsCache = new ActionsCacheRoutes({
    entries: swarmRecords.define(cacheEntryKind(config.swarmKey !== undefined)),
    uploads: cacheUploads,
    blobs: new SwarmBlobs({ store, blobs }),
    self,
    provideNow: swarm === undefined ? undefined : async (keys, options) => {
      await swarm?.provideNow(keys, options)
    },
    bucket,
    stats,
    log: log.child({ component: 'actions-cache' })
  })
  const admin = new AdminRoutes({
    store,
    stats,
    adminToken: config.adminToken,
    isReady: () => ready,
    log,
    clients,
    proxyCa: proxyCa?.certPem,
    privateStore,
    ...(swarm !== undefined ? { p2p: p2pInfo(swarm, stats) } : {})
  })
  const scopes = new Scopes(privateKey.raw)
  const apiClient = new ApiClient({
    upstreams: config.apiUpstreams,
    concurrency: config.apiConcurrency,
    timeoutMs: config.upstreamTimeout,
    onRateLimit: (upstream, authorization, remaining) => {
      stats.setApiRateLimit(upstream, api?.credentialLabel(upstream, authorization) ?? 'anon', remaining)
    },
    ca: upstreamCa
  })
  life.add('api client', async () => {
    await apiClient.close()
  })
  api = new ApiResolver({
    client: apiClient,
    store,
    records: apiRecords,
    scopes,
    fleet,
    stats,
    maxBody: config.apiMaxBody,
    peers,
    log: log.child({ component: 'apicache' })
  })
  // At shutdown, after the servers stopped taking requests and the downloads in flight committed
  // (registered after this, so stopped before): what only this node keeps of the local namespace
  // goes to a peer, while uploads to the bucket in flight get their grace.
  const openStore = store
  const openSwarm = swarm
  life.add('handoff', async () => {
    await Promise.all([
      openSwarm !== undefined ? handOff({ store: openStore, tags: localTags, replicas, self, log: pushLog }, HANDOFF_MAX_MS) : undefined,
      bucketTier?.writer.drain(UPLOAD_DRAIN_MS)
    ])
  })
  // Downloads in flight get a grace period to commit before the index closes, then stop.
  life.add('downloads', async () => {
    await openBlobs.drain(DOWNLOAD_DRAIN_MS)
  })
  const apiRoutes = new ApiRoutes({ client: apiClient, resolver: api, stats, log: log.child({ component: 'apicache' }) })
  const routes = [admin, local, registry, actionsCache, apiRoutes]
  const limits: HttpLimits = {
    headerTimeoutMs: config.httpHeaderTimeout,
    idleTimeoutMs: config.httpIdleTimeout,
    stallTimeoutMs: config.httpStallTimeout,
    maxConnections: connectionBound(config.httpMaxConnections, tls === undefined ? 1 : 2, log)
  }
  const server: Server = createHttpServer(routes, log, limits)
  const tlsServer: HttpsServer | undefined = tls === undefined ? undefined : createHttpsServer(routes, tls, log, limits)
  // The sidecar's own ports, which the proxy never connects back into.
  const ownPorts: number[] = [
    ...config.listenAddrs.flatMap(ma => /\/tcp\/(\d+)/.exec(ma.toString())?.slice(1).map(Number) ?? []),
    ...(typeof config.p2pDataPort === 'number' ? [config.p2pDataPort] : [])
  ]
  // Intercepted registries CACHE_REGISTRY_UPSTREAMS does not name get a client of their own, whose
  // connections (and redirects) are guarded as the proxy's are.
  const proxyUpstreams = new ProxyUpstreams({
    configured: registryClients,
    make: (upstream, credential) =>
      registryClient(upstream, credential, guardedLookup(upstream.url.port === '' ? 443 : Number(upstream.url.port), () => ownPorts)),
    credential: upstream => credentialFor(upstream, config.registryAuth, dockerConfig, log)
  })
  life.add('proxy upstreams', async () => {
    await proxyUpstreams.close()
  })
  const proxy = proxyCa === undefined
    ? undefined
    : new ProxyServer({
      intercept: config.proxyIntercept,
      allow: config.proxyAllow,
      ca: proxyCa,
      ownPorts: () => ownPorts,
      upstreamCa,
      routes: [
        new RegistryIntercept({ upstreams: proxyUpstreams, registry, privateStore, log: proxyLog }),
        new DownloadIntercept({
          patterns: config.proxyPatterns,
          upstreams: proxyUpstreams,
          blobs,
          store,
          records: urlRecords,
          bucket,
          stats,
          log: proxyLog
        })
      ],
      stats,
      log: proxyLog
    })
  // The listeners stop together (each gives its requests in flight the same grace), and before
  // the next one listens the ones listening already are registered: a port that is taken closes them.
  const listening: Array<() => Promise<void>> = []
  life.add('listeners', async () => {
    await Promise.all(listening.map(async close => {
      await close()
    }))
  })
  const httpAddr = await listen(server, config.httpAddr)
  listening.push(async () => {
    await closeServer(server)
  })
  let httpsAddr: HostPort | undefined
  if (tlsServer !== undefined && config.httpsAddr !== undefined) {
    httpsAddr = await listen(tlsServer, config.httpsAddr, 'CACHE_HTTPS_ADDR')
    listening.push(async () => {
      await closeServer(tlsServer)
    })
  }
  let proxyAddr: HostPort | undefined
  if (proxy !== undefined && config.proxyAddr !== undefined) {
    proxyAddr = await listen(proxy.server, config.proxyAddr, 'CACHE_PROXY_ADDR')
    listening.push(async () => {
      await proxy.close()
    })
  }
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
  if (swarm !== undefined) swarm.announceAll(storedKeys(store, tags, swarmRecords))
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
    store: openStore,
    stats,
    swarm: openSwarm,
    stop: async () => {
      await life.stop()
    }
  }
}

async function startSwarm (
  config: Config,
  privateKey: PrivateKey,
  store: BlobStore,
  stats: Stats,
  records: { tags: TagCache, apiRecords: ApiRecords } & Pick<SwarmComponents, 'records' | 'inProgress' | 'downloading' | 'hold'>,
  log: Logger
): Promise<Swarm> {
  const exposed = config.listenAddrs.some(ma => !/^\/ip[46]\/(127\.|::1\/)/.test(ma.toString()))
  if (config.swarmKey === undefined && exposed) {
    log.warn(
      { listen: config.listenAddrs.map(String) },
      'open swarm: any host that reaches the P2P port can join and fetch cached blobs by digest; set CACHE_SWARM_KEY (p2p-cache swarm-key) to restrict it to your runners'
    )
  }
  try {
    return await Swarm.start({
      privateKey,
      listen: config.listenAddrs,
      announce: config.announceAddrs,
      bootstrap: config.bootstrapPeers,
      mdns: config.mdns,
      swarmKey: config.swarmKey,
      maxUploads: config.maxUploads,
      maxUploadRate: config.p2pMaxUploadRate,
      data: dataChannelAddress(config.listenAddrs, config.p2pDataPort)
    }, {
      store,
      stats,
      tags: async key => await records.tags.lookup(key),
      apiRecords: async key => await records.apiRecords.forPeer(key),
      records: records.records,
      inProgress: records.inProgress,
      downloading: records.downloading,
      hold: records.hold,
      log
    })
  } catch (err) {
    if (err instanceof DataListenError) throw new P2pStartError(err.message)
    // libp2p's message spans lines (one per address): the start-up error is one line.
    const message = (err as Error).message.split('\n').map(l => l.trim()).filter(Boolean).join(' ')
    const hint = /EADDRINUSE|EACCES|EADDRNOTAVAIL/.test(message)
      ? 'Pick a free port or an address of this host with CACHE_LISTEN_ADDRS (or CACHE_P2P_PORT when CACHE_LISTEN_ADDRS is unset), or run without peers with CACHE_ENABLE_P2P=false'
      : 'Run without peers with CACHE_ENABLE_P2P=false while this is investigated'
    throw new P2pStartError(`could not start the peer-to-peer node on ${config.listenAddrs.join(', ')}: ${message}. ${hint}`)
  }
}

/** The bucket tier when CACHE_S3_URL is set: the client, its upload queue, and the tier over both. */
function startBucket (
  config: Config,
  store: BlobStore,
  stats: Stats,
  log: Logger
): { bucket: Bucket, writer: BucketWriter, tier: BucketTier } | undefined {
  if (config.s3Url === undefined) return undefined
  const bucket = new Bucket({ url: config.s3Url, endpoint: config.s3Endpoint, forcePathStyle: config.s3ForcePathStyle })
  const writer = new BucketWriter({ bucket, store, stats, log })
  const tier = new BucketTier({ bucket, writer, stats, log, readTimeoutMs: config.s3Timeout })
  log.info(
    { bucket: bucket.name, endpoint: config.s3Endpoint ?? 'AWS S3', timeoutMs: config.s3Timeout },
    'bucket tier on: content fetched from upstreams and pushed here is uploaded in the background'
  )
  return { bucket, writer, tier }
}

/** Stops accepting; idle connections go now, in-flight downloads get a grace period, then sockets are cut. */
async function closeServer (server: Server | HttpsServer): Promise<void> {
  await new Promise<void>(resolve => {
    server.close(() => resolve())
    server.closeIdleConnections()
    setTimeout(() => {
      server.closeAllConnections()
    }, 5_000).unref()
  })
}

function p2pInfo (swarm: Swarm, stats: Stats): () => P2pInfo {
  return () => ({
    peerId: swarm.peerId.toString(),
    addrs: swarm.addrs(),
    peers: swarm.peers(),
    uploads: swarm.uploads,
    routingTable: swarm.routingTableSize(),
    lastPeerHitAt: stats.lastPeerHitAt?.toISOString() ?? null,
    dataPort: swarm.dataPort ?? null,
    dataUnreachable: swarm.dataUnreachablePeers()
  })
}

async function* storedKeys (store: BlobStore, tags: TagCache, records: SwarmRecords): AsyncGenerator<Digest | TagKey | RecordKey> {
  for await (const [digest] of store.entries()) yield digest
  yield* tags.swarmKeys()
  yield* records.swarmKeys()
}
