import type { Logger } from 'pino'
import type { AbortOptions } from '@libp2p/interface'
import { raceSignal } from 'race-signal'
import type { Digest } from '../oci/digest.js'
import type { StoreReader, StoreWriter } from '../store/roles.js'
import { discard } from '../io/bounded-body.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'
import type { Stats } from '../metrics/stats.js'
import { BlobDownload, type DownloadKind, type DownloadTiming } from './download.js'
import { storedSource, type BlobSource, type CacheStatus } from './source.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'
import { SingleFlight } from './single-flight.js'
import { BUCKET_ORIGIN, type BucketTier } from '../bucket/bucket-tier.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import { contentLength } from '../http/fields.js'

export interface BlobResolverInit {
  store: Pick<StoreReader, 'stat' | 'openRead' | 'maxSize'> & Pick<StoreWriter, 'createWriter' | 'makeRoom' | 'markFull' | 'commit'>
  stats: Stats
  log: Logger
  /** The swarm, when CACHE_ENABLE_P2P is on. */
  peers?: PeerLookupInit | undefined
  /** The bucket (CACHE_S3_URL): after the swarm, before the upstream. */
  bucket?: BucketTier | undefined
  /** How long a download goes on after its last reader left (default DOWNLOAD_LINGER_MS; unit tests). */
  lingerMs?: number
  /** Overrides of the downloads' swarm timing (unit tests). */
  timing?: Partial<DownloadTiming>
}

/** One download in progress (BlobResolver.transfers). */
export interface Transfer {
  digest: Digest
  kind: DownloadKind
  repo: string
  source: 'peer' | 's3' | 'upstream'
  /** The peer's ID when the bytes come from a peer. */
  from: string | undefined
  /** Bytes received so far. */
  written: number
  /** The whole size, once a source stated it. */
  size: number | undefined
  /** ISO 8601. */
  startedAt: string
}

export interface OpenOptions {
  /** `manifest`: fetched from /manifests/ with its media type, and a stored copy without one is a miss. */
  kind?: DownloadKind
  /** The client left: its share of the download is released (the download stops if it was the last). */
  signal?: AbortSignal
}

/**
 * A download whose last reader left goes on this long: a client that retries, or asks for the
 * next range, finds it still running.
 */
const DOWNLOAD_LINGER_MS = 5_000
/** Joins of a download that finished between the lookup and the join: the store has it then. */
const MAX_OPEN_TRIES = 3

/**
 * local store → swarm (claims, peers) → bucket (CACHE_S3_URL) → upstream (docs/design.md §2, issue 27). Blobs are keyed by digest alone, so a
 * layer shared by several images or repositories is fetched once; concurrent misses share one
 * download, in this node (SingleFlight) and across the swarm (claims, see BlobDownload).
 */
export class BlobResolver {
  private readonly downloads: SingleFlight<string, BlobDownload>

  constructor (private readonly init: BlobResolverInit) {
    this.downloads = new SingleFlight({ lingerMs: init.lingerMs ?? DOWNLOAD_LINGER_MS })
  }

  /**
   * The blob `digest` for one response: a local hit, or a share of the download (started here
   * if none runs). Throws the download's error (upstream status, unavailable, digest mismatch).
   * The caller calls `release` when its response is over.
   */
  async open (client: RegistryUpstream, repo: string, digest: Digest, opts: OpenOptions = {}): Promise<BlobSource> {
    const { store, stats, log, peers } = this.init
    const kind = opts.kind ?? 'blob'
    for (let tries = 1;; tries++) {
      await this.settle(kind, digest)
      const local = await store.openRead(digest)
      // A record without a media type was stored through /blobs/: as a manifest, the upstream
      // must confirm the type (and it is fetched again).
      if (local !== undefined && (kind === 'blob' || local.record.mediaType !== undefined)) {
        stats.inc('hits')
        log.info({ digest, kind, size: local.record.size, cache: 'HIT' }, `${kind} hit`)
        return storedSource(local)
      }
      await local?.release()
      if (tries === 1) stats.inc('misses')
      const share = this.downloads.join(`${kind} ${digest}`, signal => {
        const download = new BlobDownload({
          digest,
          kind,
          repo,
          client,
          store,
          stats,
          log,
          peers,
          bucket: this.init.bucket,
          signal,
          timing: this.init.timing
        })
        return { value: download, done: download.done }
      }, { signal: opts.signal })
      const active = share.value
      if (!active.retain()) {
        // It finished between the store lookup and the join: the store has it now (or it failed).
        share.release()
        if (tries < MAX_OPEN_TRIES) continue
        throw active.error ?? new Error(`download of ${digest} ended while joining it`)
      }
      let size: number | undefined
      try {
        ;({ size } = await active.ready)
      } catch (err) {
        active.release()
        share.release()
        throw err
      }
      log.info({ digest, kind, size, cache: active.cache, source: active.origin, joined: !share.started }, `${kind} miss`)
      return readerOf(active, size, async () => {
        active.release()
        share.release()
      })
    }
  }

  /**
   * This node's own download of `digest` in progress, once its size is known, for a peer's fetch
   * request; never starts one (docs/design.md §3.4: no fetch on a peer's behalf). `pending` when one runs but
   * has no source yet when `signal` aborts (the peer is told `busy` and asks again); undefined
   * when there is none, it failed, or it reads from a peer itself (see BlobDownload.servesPeers).
   */
  async inProgress (digest: Digest, options: Required<AbortOptions>): Promise<BlobSource | 'pending' | undefined> {
    const { signal } = options
    let pending = false
    for (const kind of ['blob', 'manifest'] as const) {
      const share = this.downloads.joinExisting(`${kind} ${digest}`, { signal })
      if (share === undefined) continue
      const active = share.value
      if (!active.retain()) {
        share.release()
        continue
      }
      try {
        const { size } = await raceSignal(active.ready, signal)
        if (active.servesPeers) {
          return readerOf(active, size, async () => {
            active.release()
            share.release()
          }, true)
        }
      } catch {
        pending ||= signal.aborted && active.error === undefined
      }
      active.release()
      share.release()
    }
    return pending ? 'pending' : undefined
  }

  /**
   * The downloads running now, for the status page: what, from where (`peer` with the peer's
   * ID, `s3`, or `upstream`), bytes so far and the whole size once known.
   */
  transfers (): Transfer[] {
    return this.downloads.values().map(d => ({
      digest: d.digest,
      kind: d.what.kind,
      repo: d.what.repo,
      source: d.cache === 'PEER' ? 'peer' : d.fromBucket ? 's3' : 'upstream',
      from: d.cache === 'PEER' ? d.origin : undefined,
      written: d.written,
      size: d.size,
      startedAt: new Date(d.startedAt).toISOString()
    }))
  }

  /** Downloads (blobs and manifests) running in this node now. */
  get downloading (): number {
    return this.downloads.size
  }

  /** Whether `digest` is in the local store now. */
  async stored (digest: Digest): Promise<boolean> {
    return await this.init.store.stat(digest) !== undefined
  }

  /** When `digest` was stored in the local store (its record's createdAt, ms), or undefined when it is not there now. */
  async storedAt (digest: Digest): Promise<number | undefined> {
    return (await this.init.store.stat(digest))?.createdAt
  }

  /**
   * Blob size without fetching it (HEAD): the store, a peer's header, the upstream, or (the
   * upstream down) the bucket. @throws the upstream's errors; the signal's reason
   */
  async head (
    client: RegistryUpstream,
    repo: string,
    digest: Digest,
    options: AbortOptions = {}
  ): Promise<{ cache: CacheStatus, origin: string, size: number | undefined, storedAt?: number }> {
    await this.settle('blob', digest)
    const record = await this.init.store.stat(digest)
    if (record !== undefined) return { cache: 'HIT', origin: 'local', size: record.size, storedAt: record.createdAt }
    const peers = this.init.peers
    if (peers !== undefined) {
      // A header-only request (empty range): the peer states the size; nothing is stored.
      const found = await tryProviders(peers, digest, {
        budgetMs: peers.lookupTimeoutMs + peers.idleMs,
        ...(options.signal !== undefined ? { signal: options.signal } : {})
      }, async (peer, { signal }) => {
        const blob = await peers.swarm.fetch(peer, { key: digest, start: 0, end: 0 }, { signal, idleMs: peers.idleMs })
        blob.close()
        return { cache: 'PEER' as const, origin: blob.peer, size: blob.size }
      })
      if (found !== undefined) return found
    }
    let res
    try {
      res = await client.sendOk('HEAD', repo, `/v2/${repo}/blobs/${digest}`, {}, options)
    } catch (err) {
      // The upstream is down: the bucket can still say the size (its GET will serve the bytes).
      const size = err instanceof UpstreamUnavailableError && options.signal?.aborted !== true
        ? await this.init.bucket?.headBlob(digest, options)
        : undefined
      if (size === undefined) throw err
      return { cache: 'MISS', origin: BUCKET_ORIGIN, size }
    }
    discard(res.body)
    return { cache: 'MISS', origin: client.name, size: contentLength(res.headers['content-length']) }
  }

  /** Shutdown: downloads in flight get `graceMs` to commit, then are stopped. */
  async drain (graceMs: number): Promise<void> {
    await this.downloads.drain(new Error('shutting down'), graceMs)
  }

  /** A verified download being committed is a local hit a few milliseconds from now. */
  private async settle (kind: DownloadKind, digest: Digest): Promise<void> {
    const committing = this.downloads.peek(`${kind} ${digest}`)
    if (committing?.verified === true) await committing.done.catch(() => {})
  }
}

/** One response's view of a download (`forPeer`: a peer's fetch): bytes as they arrive, the media type as last known. */
function readerOf (active: BlobDownload, size: number | undefined, release: () => Promise<void>, forPeer = false): BlobSource {
  return {
    cache: active.cache,
    origin: active.origin,
    size,
    get mediaType () {
      return active.mediaType
    },
    stream: (start, end, pieces) => active.reader(start, end, forPeer, pieces),
    release,
    have: () => active.written,
    get relayed () {
      return active.piecewise
    },
    get epoch () {
      return active.epoch
    },
    pieceHashes: async (from, max, options) => await active.pieceHashes(from, max, options)
  }
}
