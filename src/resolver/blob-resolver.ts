import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { BlobStore } from '../store/blob-store.js'
import { discard, type RegistryClient } from '../upstream/registry-client.js'
import type { Stats } from '../metrics/stats.js'
import { BlobDownload } from './download.js'
import type { BlobSource, CacheStatus } from './source.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'

export interface BlobResolverInit {
  store: BlobStore
  stats: Stats
  log: Logger
  /** The swarm, when CACHE_ENABLE_P2P is on. */
  peers?: PeerLookupInit | undefined
}

/**
 * local store → peers found on the DHT → upstream (SPEC 2). Blobs are keyed by digest alone,
 * so a layer shared by several images or repositories is fetched once; concurrent misses share
 * one download.
 */
export class BlobResolver {
  private readonly downloads = new Map<Digest, BlobDownload>()

  constructor (private readonly init: BlobResolverInit) {}

  async open (client: RegistryClient, repo: string, digest: Digest): Promise<BlobSource> {
    const { store, stats, log } = this.init
    await this.settle(digest)
    const local = await store.openRead(digest)
    if (local !== undefined) {
      stats.inc('hits')
      log.info({ digest, size: local.record.size, cache: 'HIT' }, 'blob hit')
      return {
        cache: 'HIT', origin: 'local', size: local.record.size,
        ...(local.record.mediaType !== undefined ? { mediaType: local.record.mediaType } : {}),
        stream: (start, end) => local.stream(start, end === undefined ? undefined : end - 1),
        release: local.release
      }
    }
    stats.inc('misses')
    let download = this.downloads.get(digest)
    if (download === undefined || !download.retain()) {
      download = new BlobDownload({ digest, repo, client, store, stats, log, peers: this.init.peers })
      this.downloads.set(digest, download)
      const started = download
      started.retain()
      started.done.catch(() => {})
        .finally(() => { if (this.downloads.get(digest) === started) this.downloads.delete(digest) })
    }
    // Retained above in the same tick as the lookup: the temporary file stays open for us.
    const active = download
    let size: number | undefined
    try {
      ({ size } = await active.ready)
    } catch (err) {
      active.release()
      throw err
    }
    log.info({ digest, size, cache: active.cache, source: active.origin }, 'blob miss')
    return {
      cache: active.cache, origin: active.origin, size,
      stream: (start, end) => active.reader(start, end),
      release: async () => { active.release() }
    }
  }

  /** Blob size without fetching it (HEAD). */
  async head (client: RegistryClient, repo: string, digest: Digest): Promise<{ cache: CacheStatus, origin: string, size: number | undefined }> {
    await this.settle(digest)
    const record = await this.init.store.stat(digest)
    if (record !== undefined) return { cache: 'HIT', origin: 'local', size: record.size }
    const peers = this.init.peers
    if (peers !== undefined) {
      // A header-only request (empty range): the peer states the size; nothing is stored.
      const found = await tryProviders(peers, digest, { budgetMs: peers.lookupTimeoutMs + peers.idleMs }, async (peer, signal) => {
        const blob = await peers.swarm.fetch(peer, { key: digest, start: 0, end: 0 }, { signal, idleMs: peers.idleMs })
        blob.close()
        return { cache: 'PEER' as const, origin: blob.peer, size: blob.size }
      })
      if (found !== undefined) return found
    }
    const res = await client.sendOk('HEAD', repo, `/v2/${repo}/blobs/${digest}`, {})
    discard(res.body)
    const length = res.headers['content-length']
    return { cache: 'MISS', origin: client.name, size: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined }
  }

  /** Waits for every download in flight to finish (or fail), up to `timeoutMs`: shutdown. */
  async drain (timeoutMs: number): Promise<void> {
    for (const d of this.downloads.values()) d.cancel()
    const all = Promise.allSettled([...this.downloads.values()].map(async d => await d.done))
    await Promise.race([all, new Promise(resolve => setTimeout(resolve, timeoutMs).unref())])
  }

  /** A verified download being committed is a local hit a few milliseconds from now. */
  private async settle (digest: Digest): Promise<void> {
    const committing = this.downloads.get(digest)
    if (committing?.verified === true) await committing.done.catch(() => {})
  }
}
