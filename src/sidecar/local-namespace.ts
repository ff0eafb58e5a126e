import type { Logger } from 'pino'
import type { BucketTier } from '../bucket/bucket-tier.js'
import type { Config } from '../config/options.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { Stats } from '../metrics/stats.js'
import { LocalRegistry, localTagKind, type LocalTag } from '../push/local-registry.js'
import { ReplicaKeeper } from '../push/replica-keeper.js'
import { Replicator } from '../push/replicator.js'
import { UploadSessions } from '../push/upload-sessions.js'
import type { RecordTable, SwarmRecords } from '../records/swarm-records.js'
import type { BlobResolver } from '../resolver/blob-resolver.js'
import type { PeerLookupInit } from '../resolver/peer-lookup.js'
import type { BlobStore } from '../store/blob-store.js'
import type { LateBound } from './late-bound.js'

export interface LocalNamespace {
  /** The front: pushes, and pulls of what was pushed here. */
  registry: LocalRegistry
  /** Its tags, swarm records. */
  tags: RecordTable<LocalTag>
  /** Copies of pushes on other nodes. */
  replicas: Replicator
}

/** What the local namespace is built on. */
export interface LocalNamespaceParts {
  store: BlobStore
  blobs: BlobResolver
  records: SwarmRecords
  peers: PeerLookupInit | undefined
  bucket: BucketTier | undefined
  /** This node's peer ID. */
  self: string
  stats: Stats
}

/**
 * The swarm-local namespace (CACHE_LOCAL_NAMESPACE): upload sessions (registered with `life`),
 * the replicator that copies pushes to peers and, with peers, the keeper that holds other nodes'
 * pushes (set in `late` for the swarm).
 */
export function localNamespace (config: Config, life: Lifecycle, late: LateBound, parts: LocalNamespaceParts, log: Logger): LocalNamespace {
  const { store, stats } = parts
  const uploads = new UploadSessions({ store, log })
  life.add('upload sessions', async () => {
    await uploads.close()
  })
  // Like URL records, a tag → digest record is a peer's word: shared only inside a private swarm.
  const tags = parts.records.define(localTagKind(config.swarmKey !== undefined))
  const swarm = late.swarm
  const replicas = new Replicator({
    network: swarm,
    replicas: config.localReplicas,
    timeoutMs: config.localReplicaTimeout,
    ttlMs: config.localTtl,
    stats,
    log
  })
  if (parts.peers !== undefined && swarm !== undefined) {
    late.keeper = new ReplicaKeeper({
      store,
      records: parts.records,
      peers: parts.peers,
      provideNow: async (keys, options) => {
        await swarm.provideNow(keys, options)
      },
      ttlMs: config.localTtl,
      stats,
      log
    })
  }
  if (swarm === undefined && (config.localReplicas ?? 0) > 0) {
    log.warn(
      { replicas: config.localReplicas },
      'CACHE_LOCAL_REPLICAS is set but P2P is off (CACHE_ENABLE_P2P=false): pushes are kept on this node only'
    )
  }
  const registry = new LocalRegistry({
    namespace: config.localNamespace,
    store,
    blobs: parts.blobs,
    uploads,
    replicas,
    ttlMs: config.localTtl,
    tags,
    self: parts.self,
    bucket: parts.bucket,
    stats,
    log
  })
  return { registry, tags, replicas }
}
