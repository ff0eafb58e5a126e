import type { AbortOptions } from '@libp2p/interface'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { StoreReader, StoreWriter } from '../store/roles.js'
import type { BlobRecord } from '../store/record.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import type { Stats } from '../metrics/stats.js'
import type { PieceTiming } from './pieces/piece-fetch.js'
import type { PeerLookupInit } from './peer-lookup.js'
import type { ClaimLease } from './claim-lease.js'
import type { DownloadKind, DownloadSink, SourceAnswer } from './download-sink.js'
import { GrowingFile } from './growing-file.js'
import { UpstreamSource } from './upstream-source.js'
import { DEFAULT_SWARM_TIMING, HolderSource, type SwarmTiming } from './holder-source.js'
import { BucketSource } from './bucket-source.js'
import type { BucketTier } from '../bucket/bucket-tier.js'

export type { DownloadKind } from './download-sink.js'

/** The waits of a download's swarm side; the defaults are the constants (tests inject small ones). See SwarmTiming. */
export type DownloadTiming = SwarmTiming

/** The timing of production: the protocol constants. */
export const DEFAULT_DOWNLOAD_TIMING: DownloadTiming = DEFAULT_SWARM_TIMING

export interface BlobDownloadInit {
  digest: Digest
  kind: DownloadKind
  repo: string
  client: RegistryUpstream
  /** Read (`stat`, the size bound) and written through the growing file. */
  store: Pick<StoreReader, 'stat' | 'maxSize'> & Pick<StoreWriter, 'createWriter' | 'makeRoom' | 'markFull' | 'commit'>
  stats: Stats
  log: Logger
  /** Ask the swarm first; undefined = upstream only (CACHE_ENABLE_P2P=false). */
  peers?: PeerLookupInit | undefined
  /** The bucket (CACHE_S3_URL): asked after the swarm, before the upstream; what came from the upstream is uploaded to it. */
  bucket?: BucketTier | undefined
  /** Aborted when every reader left (SingleFlight) or at shutdown: the download stops. */
  signal: AbortSignal
  /** Overrides of DEFAULT_DOWNLOAD_TIMING (unit tests). */
  timing?: Partial<DownloadTiming> | undefined
  /** Overrides of DEFAULT_PIECE_TIMING (unit tests). */
  pieceTiming?: Partial<PieceTiming> | undefined
}

/**
 * One fetch of a digest into the store. The swarm decides who goes upstream (issue 12): the
 * key's coordinator answers a claim with "fetch" (this node goes upstream, renewing its lease
 * while bytes arrive) or "join" (read it from the peer that is fetching or has it). When no
 * coordinator answers, the DHT's provider records are tried, then the upstream. A peer that
 * fails mid-way is reported to the coordinator and the rest comes from the next source, resumed
 * with a Range where it can be.
 *
 * Any number of readers (HTTP clients, and peers through the fetch protocol) follow the
 * temporary file as it grows, each at its own pace; the last byte of the blob is held back until
 * the whole digest verified, whatever the source. When bytes from a peer turn out wrong, the file
 * starts over: a reader that already had some of them is cut (its client retries), a peer that
 * sent all of them is deny-listed, and nothing wrong is committed or served whole.
 *
 * The parts: the file and its readers (GrowingFile), the swarm's holders (HolderSource), the
 * upstream (UpstreamSource); this class runs them in order and is what responses hold.
 */
export class BlobDownload {
  /**
   * Resolves with the size once a source is committed to (an upstream 2xx, a peer's header).
   * When the file starts over, a new one waits for the next source: a response that joins then
   * names the source it will really read from.
   */
  get ready (): Promise<{ size: number | undefined }> {
    return this.readyState.promise
  }

  readonly done: Promise<BlobRecord>
  readonly digest: Digest
  /** When it started (ms since the epoch): the status page's transfers. */
  readonly startedAt = Date.now()
  /** Where the bytes come from: a peer (origin = its id) or the upstream. */
  cache: 'PEER' | 'MISS' = 'MISS'
  origin: string
  /** Manifests: the type the upstream stated, or the one a peer stated and the body confirms. */
  mediaType: string | undefined
  /** A source answered (`ready` resolved). */
  sourced = false
  /** The bytes come from peers piece by piece, each verified against piece hashes: peers may read them. */
  piecewise = false
  /** The bytes come from the bucket (cache MISS, origin `s3`). */
  fromBucket = false
  private readonly file: GrowingFile
  private readonly upstream: UpstreamSource
  /** The swarm; undefined without one (CACHE_ENABLE_P2P=false). */
  private readonly holders: HolderSource | undefined
  /** The bucket; undefined without CACHE_S3_URL. */
  private readonly bucket: BucketSource | undefined
  private refs = 1
  private readyState = pending<{ size: number | undefined }>()

  constructor (private readonly init: BlobDownloadInit) {
    const { digest, kind, repo, client, store, stats, log, peers } = init
    this.digest = digest
    this.origin = client.name
    this.file = new GrowingFile({
      digest,
      store,
      stats,
      log,
      hashPieces: peers !== undefined && kind === 'blob',
      rest: (from, verifier, options) => this.upstream.rest(from, verifier, options),
      onRestart: () => {
        this.forgetSource()
      }
    })
    const sink: DownloadSink = {
      file: this.file,
      sourced: answer => {
        this.sourcedBy(answer)
      },
      setMediaType: mediaType => {
        this.mediaType = mediaType
      }
    }
    this.upstream = new UpstreamSource({ client, repo, digest, kind, stats, log, swarm: peers?.swarm, sink })
    this.holders = peers === undefined
      ? undefined
      : new HolderSource({
        peers,
        digest,
        kind,
        store,
        stats,
        log,
        sink,
        timing: { ...DEFAULT_DOWNLOAD_TIMING, ...init.timing },
        pieceTiming: init.pieceTiming
      })
    this.bucket = init.bucket === undefined
      ? undefined
      : new BucketSource({ bucket: init.bucket, digest, kind, stats, log, swarm: peers?.swarm, sink })
    this.done = this.run().catch((err: Error) => {
      this.file.fail(err)
      this.readyState.reject(err)
      throw err
    }).finally(() => {
      this.file.wake()
      this.release()
    })
    this.done.catch(() => {})
  }

  /** The repository it was asked for (`upstream/name` as the client named it) and what it is. */
  get what (): { repo: string, kind: DownloadKind } {
    return { repo: this.init.repo, kind: this.init.kind }
  }

  /** Whole size in bytes, once a source stated it. */
  get size (): number | undefined {
    return this.file.size
  }

  /** Bytes [0, written) are in the temporary file (verified piece by piece when from peers in pieces). */
  get written (): number {
    return this.file.written
  }

  /** The digest matched: readers may have the last byte (the file may not be durable yet). */
  get verified (): boolean {
    return this.file.verified
  }

  /** Why the download failed; undefined while it runs and once it stored the blob. */
  get error (): Error | undefined {
    return this.file.error
  }

  /**
   * Names this copy for peers that take its pieces: a new random value whenever the file starts
   * over, so a receiver never mixes piece hashes of one copy with pieces of another.
   */
  get epoch (): string {
    return this.file.epoch
  }

  /**
   * Whether peers may read it before it verified: while this node is the one fetching from the
   * upstream (including a prefix it resumed after a peer failed: it took over), not while it
   * reads from a peer (it is not the one the swarm was told about). Every hop holds back the
   * last byte until its own copy verified, so a wrong prefix can cut transfers along the way but
   * never completes one; only a peer that completes a transfer with wrong bytes is deny-listed.
   */
  get servesPeers (): boolean {
    return this.error === undefined && (this.verified || this.cache === 'MISS' || this.piecewise)
  }

  /**
   * Up to `max` piece hashes of the bytes written, from piece `from` (concatenated hex); waits
   * for the next piece when there is none yet, until `signal` aborts (then '').
   */
  async pieceHashes (from: number, max: number, options: Required<AbortOptions>): Promise<string> {
    return await this.file.pieceHashes(from, max, options)
  }

  /**
   * Writes a verified piece that starts at byte `start` (pieces come out of order): in order
   * when it starts at the end of the bytes written, then any pieces written ahead that now follow;
   * otherwise ahead of them, counted once the bytes before it are in.
   */
  async writePiece (start: number, chunks: Buffer[], hash?: string): Promise<void> {
    await this.file.writePiece(start, chunks, hash)
  }

  /**
   * Takes a hold on the temporary file for one response; false once the download is over and
   * the file closed (the blob is then in the store, or failed). Pair with `release`.
   */
  retain (): boolean {
    if (this.refs === 0) return false
    this.refs++
    return true
  }

  release (): void {
    if (--this.refs === 0) this.file.close()
  }

  /**
   * A stream of bytes [start, end) of the blob as they arrive; the caller holds a `retain`.
   * `forPeer`: a peer's fetch, which is cut rather than finished from the upstream when the
   * store is full (docs/design.md §3.4: nothing is fetched on a peer's behalf). See GrowingFile.reader.
   */
  reader (start: number, end: number | undefined, forPeer = false, pieces = false): Readable {
    return this.file.reader(start, end, forPeer, pieces)
  }

  private async run (): Promise<BlobRecord> {
    const { store, stats, log, peers, digest, kind, signal } = this.init
    let lease: ClaimLease | undefined
    try {
      await this.file.restart()
      if (this.holders !== undefined) lease = await this.holders.fromSwarm({ signal })
      if (!this.verified) {
        if (lease === undefined) await this.fromUpstreamOrPeers()
        else {
          await lease.during(() => this.written, async () => {
            await this.fromUpstreamOrPeers()
          })
        }
      }
      const source = this.cache === 'PEER'
        ? `peer ${this.origin}`
        : this.fromBucket
        ? `bucket ${this.init.bucket?.name ?? ''}`
        : `upstream ${this.origin}`
      const record = await this.file.commit(
        source,
        kind === 'manifest' && this.mediaType !== undefined ? { mediaType: this.mediaType } : {}
      )
      lease?.done()
      if (!this.fromBucket) stats.inc(this.cache === 'PEER' ? 'peer_hits' : 'upstream_hits')
      log.info({ digest, kind, size: record.size, cache: this.cache, source: this.origin }, `${kind} stored`)
      // What came from the upstream goes to the bucket: swarm-wide, the node that fetched it (the
      // claim holder), not the ones that read it from that node.
      if (this.cache === 'MISS' && !this.fromBucket) this.init.bucket?.uploadBlob(digest, { replace: this.bucket?.foundBad === true })
      return record
    } catch (err) {
      await this.file.abort().catch(() => {})
      lease?.release()
      if (peers !== undefined && await store.stat(digest).catch(() => undefined) === undefined) peers.swarm.forget(digest)
      throw err
    }
  }

  /**
   * The bucket, then the upstream; when the upstream is unreachable, any provider the DHT knows
   * (an outage is when peers matter).
   */
  private async fromUpstreamOrPeers (): Promise<void> {
    const { signal } = this.init
    if (this.bucket !== undefined && await this.bucket.fetch({ signal })) return
    try {
      await this.upstream.fetch({ signal })
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError) || this.holders === undefined || signal.aborted) throw err
      if (!await this.holders.fromProviders({ signal })) throw err
    }
  }

  /** A source committed to (see DownloadSink.sourced). */
  private sourcedBy (answer: SourceAnswer): void {
    this.file.size = answer.size
    this.fromBucket = answer.bucket === true
    this.cache = answer.cache
    this.origin = answer.origin
    if (answer.mediaType !== undefined) this.mediaType = answer.mediaType
    if (answer.piecewise === true) this.piecewise = true
    this.sourced = true
    this.readyState.resolve({ size: answer.size })
  }

  /** The file starts over: its bytes no longer come from the source that answered (see GrowingFileInit.onRestart). */
  private forgetSource (): void {
    this.piecewise = false
    if (this.sourced) {
      this.sourced = false
      this.readyState = pending()
    }
  }
}

/** A promise with its settle functions (Node 20 has no Promise.withResolvers); never unhandled. */
function pending<T> (): { promise: Promise<T>, resolve: (v: T) => void, reject: (e: Error) => void } {
  let resolve!: (v: T) => void
  let reject!: (e: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => {})
  return { promise, resolve, reject }
}
