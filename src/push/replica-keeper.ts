import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import { MANIFEST_TYPES, MAX_MANIFEST_BYTES } from '../oci/media-types.js'
import type { StoreKeeping, StoreReader, StoreWriter } from '../store/roles.js'
import { StoreFullError } from '../store/errors.js'
import type { Stats } from '../metrics/stats.js'
import type { PeerRef } from '../p2p/fetch/client.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import type { HoldAnswer, HoldRequest } from '../p2p/hold/frames.js'
import type { RecordKey } from '../keys/record-key.js'
import type { SwarmRecords } from '../records/swarm-records.js'
import { fetchVerified } from '../resolver/peer-fetch.js'
import type { PeerLookupInit } from '../resolver/peer-lookup.js'

export interface ReplicaKeeperInit {
  store: Pick<StoreReader, 'stat' | 'maxSize'> & Pick<StoreWriter, 'createWriter' | 'commit'> & StoreKeeping
  records: Pick<SwarmRecords, 'accept'>
  /** The verified peer fetch's context. */
  peers: PeerLookupInit
  /** Announces keys on the DHT and resolves when that is done (Swarm.provideNow). */
  provideNow: (keys: Array<Digest | RecordKey>, options?: AbortOptions) => Promise<void>
  /** CACHE_LOCAL_TTL (ms): the longest a replica is kept against eviction, whatever the asker says. */
  ttlMs: number
  stats: Pick<Stats, 'inc'>
  log: Logger
  now?: () => number
}

/**
 * The holder's side of replication (issue 25, point 3): a peer that took a push asks this node
 * to hold its blobs, manifest and tag record. What is not here is fetched from that peer with
 * the verified peer fetch (digest checked before commit), everything is kept against eviction
 * (at most CACHE_LOCAL_TTL), and announced before the answer, so other nodes find this copy
 * once the pusher's runner is gone.
 */
export class ReplicaKeeper {
  constructor (private readonly init: ReplicaKeeperInit) {}

  /** Serves one hold request from `from` (see HoldRequest); never throws for the peer's faults. */
  async hold (request: HoldRequest, from: PeerRef, options: Required<AbortOptions>): Promise<HoldAnswer> {
    const { store, records, stats, log } = this.init
    const now = (this.init.now ?? Date.now)()
    const keepUntil = Math.min(request.keepUntil, now + this.init.ttlMs)
    // Kept content can't be evicted: it may not outgrow the store.
    let kept = await store.keptBytes()
    let fetched = 0
    try {
      for (const key of request.keys) {
        if (await store.stat(key.digest) === undefined) {
          const size = await this.fetch(key.digest, key.mediaType, from, kept, options)
          kept += size
          fetched += size
        }
        await store.keepUntil(key.digest, keepUntil)
      }
    } catch (err) {
      if (err instanceof PeerFetchError && err.reason === 'too_large') return { status: 'refused', message: err.message }
      if (err instanceof StoreFullError) return { status: 'refused', message: `this node's store is full: ${err.message}` }
      if (err instanceof PeerFetchError) return { status: 'failed', message: err.message }
      throw err
    }
    const recordKeys: RecordKey[] = []
    for (const record of request.records ?? []) {
      const keys = await records.accept(record.key, record.value)
      if (keys === undefined) {
        return {
          status: 'refused',
          message: `${record.key.slice(0, 200)} is not a record this node shares (is CACHE_SWARM_KEY set on both nodes?)`
        }
      }
      recordKeys.push(...keys)
    }
    await this.init.provideNow([...request.keys.map(k => k.digest), ...new Set(recordKeys)], options)
    stats.inc('replicas_held', request.keys.length)
    log.info({
      peer: from.id.toString(),
      keys: request.keys.length,
      records: request.records?.length ?? 0,
      fetched,
      keepUntil: new Date(keepUntil).toISOString()
    }, 'holding a replica')
    return { status: 'held' }
  }

  /** `digest` from `from` into the store; returns its size. @throws PeerFetchError, StoreFullError */
  private async fetch (
    digest: Digest,
    mediaType: string | undefined,
    from: PeerRef,
    kept: number,
    options: Required<AbortOptions>
  ): Promise<number> {
    const { store, peers } = this.init
    const manifest = mediaType !== undefined && MANIFEST_TYPES.includes(mediaType)
    const writer = await store.createWriter(digest)
    try {
      const blob = await fetchVerified(peers, from, {
        request: { key: digest },
        signal: options.signal,
        maxSize: Math.min(manifest ? MAX_MANIFEST_BYTES : store.maxSize, store.maxSize - kept),
        open: () => ({
          write: async chunks => {
            await writer.write(chunks)
          },
          verify: source => {
            writer.verify(source)
          }
        })
      })
      await store.commit(writer, `replica from ${blob.peer}`, manifest ? { mediaType } : {})
      return blob.size
    } catch (err) {
      await writer.abort().catch(() => {})
      throw err
    }
  }
}
