import { randomBytes } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { Readable } from 'node:stream'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { DigestMismatchError, type Digest, type DigestVerifier } from '../oci/digest.js'
import { DEFAULT_MANIFEST_ACCEPT, MANIFEST_TYPES, MAX_MANIFEST_BYTES, declaredMediaType, manifestTypeOfBody } from '../oci/media-types.js'
import { OciError } from '../oci/errors.js'
import type { BlobStore } from '../store/blob-store.js'
import type { BlobRecord } from '../store/record.js'
import type { BlobWriter } from '../store/writer.js'
import { StoreFullError } from '../store/errors.js'
import { discard } from '../upstream/registry-client.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import { parseContentRange } from '../upstream/content-range.js'
import { bodyBatches } from '../upstream/body-batches.js'
import type { Stats } from '../metrics/stats.js'
import type { PeerRef } from '../p2p/fetch/client.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { MAX_FAILED_REPORTED } from '../p2p/claim/frames.js'
import { CLAIM_RENEW_MS, CLAIM_TIMEOUT_MS } from '../p2p/claim/constants.js'
import { MAX_PEER_ATTEMPTS } from '../p2p/constants.js'
import { PieceHasher } from '../p2p/pieces/piece-hasher.js'
import { PieceMap } from './pieces/piece-map.js'
import { PieceSources } from './pieces/piece-sources.js'
import { fetchPieces, type PieceTiming } from './pieces/piece-fetch.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'
import { fetchVerified } from './peer-fetch.js'
import { Pauses } from './pauses.js'
import { ClaimLease } from './claim-lease.js'

const READ_CHUNK = 1024 * 1024
const WRITE_BATCH = 1024 * 1024
/** Times one download asks the upstream for the rest after it dropped mid-blob (each time after progress). */
const MAX_UPSTREAM_RESUMES = 3
/**
 * A peer a claim named that answers `busy` (it serves CACHE_MAX_UPLOADS already) is alive and
 * has the bytes: other holders are tried, else it is asked again after a pause, doubling from
 * the first figure up to the second (with jitter, so a herd's retries spread out). Busy never
 * counts as failed: a takeover would be a second upstream fetch (issue 23).
 */
const BUSY_RETRY_FIRST_MS = 100
const BUSY_RETRY_MAX_MS = 2_000

/** What is fetched: a blob (`/blobs/`), or a manifest by digest (`/manifests/`, typed, bounded). */
export type DownloadKind = 'blob' | 'manifest'

/** The waits of a download's swarm side; the defaults are the constants (tests inject small ones). */
export interface DownloadTiming {
  /** A busy named peer is asked again after this, doubling (BUSY_RETRY_FIRST_MS)... */
  busyRetryFirstMs: number
  /** ...up to this pause between two asks (BUSY_RETRY_MAX_MS). */
  busyRetryMaxMs: number
  /** The lease is renewed this often while bytes arrive (CLAIM_RENEW_MS). */
  claimRenewMs: number
  /** One renew, done or release round trip to the coordinator (CLAIM_TIMEOUT_MS). */
  claimTimeoutMs: number
}

/** The timing of production: the protocol constants. */
export const DEFAULT_DOWNLOAD_TIMING: DownloadTiming = {
  busyRetryFirstMs: BUSY_RETRY_FIRST_MS,
  busyRetryMaxMs: BUSY_RETRY_MAX_MS,
  claimRenewMs: CLAIM_RENEW_MS,
  claimTimeoutMs: CLAIM_TIMEOUT_MS
}

export interface BlobDownloadInit {
  digest: Digest
  kind: DownloadKind
  repo: string
  client: RegistryUpstream
  store: BlobStore
  stats: Stats
  log: Logger
  /** Ask the swarm first; undefined = upstream only (CACHE_ENABLE_P2P=false). */
  peers?: PeerLookupInit | undefined
  /** Aborted when every reader left (SingleFlight) or at shutdown: the download stops. */
  signal: AbortSignal
  /** Overrides of DEFAULT_DOWNLOAD_TIMING (unit tests). */
  timing?: Partial<DownloadTiming> | undefined
  /** Overrides of DEFAULT_PIECE_TIMING (unit tests). */
  pieceTiming?: Partial<PieceTiming> | undefined
}

/**
 * The filesystem filled up mid-download (StoreFullError): nothing will be committed, and each
 * reader gets the rest of the blob streamed through from the upstream instead.
 */
interface PassThrough {
  /** Bytes [0, written) are in the temporary file (unlinked, still open for readers). */
  written: number
  /** The digest state over those bytes, for each reader to go on hashing; undefined once the whole blob verified. */
  hash: DigestVerifier | undefined
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
  size: number | undefined
  written = 0
  /** The digest matched: readers may have the last byte (the file may not be durable yet). */
  verified = false
  /** Where the bytes come from: a peer (origin = its id) or the upstream. */
  cache: 'PEER' | 'MISS' = 'MISS'
  origin: string
  /** Manifests: the type the upstream stated, or the one a peer stated and the body confirms. */
  mediaType: string | undefined
  error: Error | undefined
  /** A source answered (`ready` resolved). */
  sourced = false
  /** Bumped whenever the temporary file starts over: readers that had bytes of it are cut. */
  private generation = 0
  /**
   * Names this copy for peers that take its pieces: a new random value whenever the file starts
   * over, so a receiver never mixes piece hashes of one copy with pieces of another.
   */
  epoch = randomBytes(8).toString('hex')
  /** Bytes in the temporary file that came from peers. */
  private peerBytes = 0
  private readonly contributors = new Set<string>()
  /** Piece hashes of the bytes written in order, handed to peers that fetch pieces (issue 23). */
  private hasher = new PieceHasher()
  /** Pieces written ahead of `written` (out of order), by offset: their length and verified hash. */
  private readonly ahead = new Map<number, { length: number, hash: string | undefined }>()
  /** The last piece write queued (see writePiece). */
  private pieceWrites: Promise<void> = Promise.resolve()
  /** The bytes come from peers piece by piece, each verified against piece hashes: peers may read them. */
  piecewise = false
  private writer: BlobWriter | undefined
  private readFile: FileHandle | undefined
  /** Set when the download failed for want of space: readers finish from the upstream (see `passThroughChunks`). */
  private passThrough: PassThrough | undefined
  private refs = 1
  private waiters: Array<() => void> = []
  private readyState = pending<{ size: number | undefined }>()
  private readonly timing: DownloadTiming

  constructor (private readonly init: BlobDownloadInit) {
    this.digest = init.digest
    this.timing = { ...DEFAULT_DOWNLOAD_TIMING, ...init.timing }
    this.origin = init.client.name
    this.done = this.run().catch((err: Error) => {
      this.error = err
      this.readyState.reject(err)
      throw err
    }).finally(() => {
      this.notify()
      this.release()
    })
    this.done.catch(() => {})
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
  async pieceHashes (from: number, max: number, signal: AbortSignal): Promise<string> {
    while (this.hasher.count <= from && this.error === undefined && !signal.aborted && !(this.verified && this.hasher.finished)) {
      await new Promise<void>(resolve => {
        const wake = (): void => { signal.removeEventListener('abort', wake); resolve() }
        signal.addEventListener('abort', wake, { once: true })
        this.waiters.push(wake)
      })
    }
    return this.hasher.hex(from, max)
  }

  /**
   * Writes a verified piece that starts at byte `start` (pieces come out of order): in order
   * when it starts at the end of the bytes written, then any pieces written ahead that now follow;
   * otherwise ahead of them, counted once the bytes before it are in.
   */
  async writePiece (start: number, chunks: Buffer[], hash?: string): Promise<void> {
    // One at a time: the file's end and the ahead list must not change under a write.
    const write = this.pieceWrites.then(async () => { await this.putPiece(start, chunks, hash) })
    this.pieceWrites = write.catch(() => {})
    await write
  }

  private async putPiece (start: number, chunks: Buffer[], hash: string | undefined): Promise<void> {
    let bytes = 0
    for (const c of chunks) bytes += c.byteLength
    if (start + bytes <= this.written || this.ahead.has(start)) return
    if (start > this.written) {
      await this.file().writeAhead(start, chunks)
      this.ahead.set(start, { length: bytes, hash })
      return
    }
    await this.append(trimFront(chunks, this.written - start), true, start === this.written ? hash : undefined)
    for (let next = this.ahead.get(this.written); next !== undefined; next = this.ahead.get(this.written)) {
      this.ahead.delete(this.written)
      const buf = Buffer.allocUnsafe(next.length)
      const { bytesRead } = await (this.readFile as FileHandle).read(buf, 0, next.length, this.written)
      if (bytesRead !== next.length) throw new Error(`temporary file of ${this.digest} has ${bytesRead} of the ${next.length} bytes written ahead at ${this.written}`)
      this.file().adopt([buf])
      this.counted([buf], true, next.hash)
    }
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
    if (--this.refs === 0) void this.readFile?.close().catch(() => {})
  }

  /**
   * A stream of bytes [start, end) of the blob as they arrive; the caller holds a `retain`.
   * `forPeer`: a peer's fetch, which is cut rather than finished from the upstream when the
   * store is full (SPEC 3.4: nothing is fetched on a peer's behalf).
   */
  reader (start: number, end: number | undefined, forPeer = false, pieces = false): Readable {
    let pos = start
    let generation = this.generation
    let pumping = false
    let passing: AsyncGenerator<Buffer> | undefined
    const left = new AbortController()
    const pump = async (stream: Readable): Promise<void> => {
      if (pumping) return
      pumping = true
      try {
        for (;;) {
          if (this.error !== undefined) {
            if (forPeer || this.passThrough === undefined || (generation !== this.generation && pos > start)) { stream.destroy(this.error); return }
            passing ??= this.passThroughChunks(this.passThrough, pos, end ?? this.size, left.signal)
            const next = await passing.next()
            if (stream.destroyed) return
            if (next.done === true) { stream.push(null); return }
            pos += next.value.byteLength
            if (!stream.push(next.value)) return
            continue
          }
          if (generation !== this.generation) {
            // A peer's piece reader was told which copy (epoch) it reads: never another one.
            if (pos > start || pieces) {
              stream.destroy(new Error(`bytes of ${this.digest} from a peer did not verify; this response was cut before its last byte and nothing was stored — retry the request`))
              return
            }
            generation = this.generation
          }
          const stop = end ?? this.size
          // A receiver of pieces checks each one against its hash: only the blob's last byte waits.
          const spanOnly = pieces && stop !== undefined && this.size !== undefined && stop < this.size
          if (stop !== undefined && pos >= stop) {
            if (this.verified || spanOnly) { stream.push(null); return }
          } else if (this.verified && pos >= this.written) {
            stream.push(null)
            return
          }
          // The final byte of the requested span waits for the digest: a client never holds a
          // complete wrong blob, whoever sent it.
          const available = Math.min(this.written, stop ?? Infinity)
          const limit = this.verified || spanOnly ? available : available - 1
          if (this.verified && this.readFile === undefined) throw new Error(`download of ${this.digest} lost its temporary file`)
          if (pos < limit && this.readFile !== undefined) {
            const n = Math.min(limit - pos, READ_CHUNK)
            const buf = Buffer.allocUnsafe(n)
            const { bytesRead } = await this.readFile.read(buf, 0, n, pos)
            if (generation !== this.generation) continue
            pos += bytesRead
            if (stream.destroyed) return
            if (!stream.push(bytesRead === n ? buf : buf.subarray(0, bytesRead))) return
          } else {
            await new Promise<void>(resolve => this.waiters.push(resolve))
          }
        }
      } catch (err) {
        stream.destroy(err as Error)
      } finally {
        pumping = false
      }
    }
    return new Readable({
      highWaterMark: READ_CHUNK,
      read () { void pump(this) },
      destroy (err, callback) {
        // The client left: its upstream request stops now, not at the generator's next yield.
        left.abort()
        void passing?.return(undefined).catch(() => {})
        callback(err)
      }
    })
  }

  /**
   * One reader's bytes [pos, stop) once the download gave up for want of space: what the
   * temporary file holds, then the rest streamed from the upstream without being stored,
   * hashed on from the file's digest state; the last byte waits until the whole blob verified.
   * `signal` aborts when the reader is destroyed (its client left).
   * @throws UpstreamUnavailableError, an upstream's OciError, DigestMismatchError
   */
  private async * passThroughChunks (from: PassThrough, pos: number, stop: number | undefined, signal: AbortSignal): AsyncGenerator<Buffer> {
    const { client, repo, digest, stats, kind } = this.init
    const file = this.readFile
    const last = stop ?? Infinity
    const fileEnd = Math.min(from.written, last)
    // The span's last byte, when the file has it, waits for the digest like any other.
    const fileHold = from.hash !== undefined && last <= from.written ? 1 : 0
    const fromFile = async function * (to: number): AsyncGenerator<Buffer> {
      while (pos < to) {
        if (file === undefined) throw new Error(`download of ${digest} lost its temporary file`)
        const n = Math.min(to - pos, READ_CHUNK)
        const { bytesRead, buffer } = await file.read(Buffer.allocUnsafe(n), 0, n, pos)
        if (bytesRead === 0) throw new Error(`temporary file of ${digest} ended at ${pos} of ${from.written} bytes`)
        pos += bytesRead
        yield buffer.subarray(0, bytesRead)
      }
    }
    yield * fromFile(fileEnd - fileHold)
    if (from.hash === undefined) return
    const verifier = from.hash.copy()
    // A manifest comes whole (registries need not serve ranges of one), a blob from where the file ends.
    const res = kind === 'manifest'
      ? await client.sendOk('GET', repo, `/v2/${repo}/manifests/${digest}`, { accept: DEFAULT_MANIFEST_ACCEPT }, signal)
      : await client.sendOk('GET', repo, `/v2/${repo}/blobs/${digest}`, { range: `bytes=${from.written}-` }, signal)
    try {
      const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : undefined
      // A 200 is the whole blob again: the bytes the file has are skipped.
      let skip = res.status === 206 && range?.start === from.written ? 0 : res.status === 200 ? from.written : -1
      if (skip < 0) throw new UpstreamUnavailableError(client.name, `answered ${res.status} with Content-Range ${res.headers['content-range'] ?? '(none)'} to a request from byte ${from.written}`)
      let at = from.written
      let held: Buffer | undefined
      for await (const batch of bodyBatches(res.body, WRITE_BATCH)) {
        for (let chunk of batch) {
          if (skip > 0) {
            const n = Math.min(skip, chunk.byteLength)
            skip -= n
            chunk = chunk.subarray(n)
          }
          verifier.update(chunk)
          stats.inc('bytes_from_upstream', chunk.byteLength)
          const chunkStart = at
          at += chunk.byteLength
          const lo = Math.max(pos, chunkStart)
          const hi = Math.min(last, at)
          if (hi <= lo) continue
          if (held !== undefined) yield held
          held = chunk.subarray(lo - chunkStart, hi - chunkStart)
          pos = hi
        }
      }
      verifier.verify(`upstream ${client.name}`)
      stats.inc('bytes_passed_through', at - from.written)
      if (held !== undefined) yield held
      yield * fromFile(fileEnd)
    } finally {
      discard(res.body)
    }
  }

  private async run (): Promise<BlobRecord> {
    const { store, stats, log, peers, digest, kind } = this.init
    let lease: ClaimLease | undefined
    try {
      await this.restart()
      if (peers !== undefined) lease = await this.fromSwarm(peers)
      if (!this.verified) {
        if (lease === undefined) await this.fromUpstreamOrPeers()
        else await lease.during(() => this.written, async () => { await this.fromUpstreamOrPeers() })
      }
      const source = this.cache === 'PEER' ? `peer ${this.origin}` : `upstream ${this.origin}`
      let record: BlobRecord
      try {
        record = await store.commit(this.file(), source, kind === 'manifest' && this.mediaType !== undefined ? { mediaType: this.mediaType } : {})
      } catch (err) {
        // Verified but not storable: readers take the rest of the file.
        if (err instanceof StoreFullError) this.passThroughFrom(err, undefined)
        throw err
      }
      lease?.done()
      stats.inc(this.cache === 'PEER' ? 'peer_hits' : 'upstream_hits')
      log.info({ digest, kind, size: record.size, cache: this.cache, source: this.origin }, `${kind} stored`)
      return record
    } catch (err) {
      await this.writer?.abort().catch(() => {})
      lease?.release()
      if (peers !== undefined && await store.stat(digest).catch(() => undefined) === undefined) peers.swarm.forget(digest)
      throw err
    }
  }

  /**
   * Asks the key's coordinator who fetches it, and reads from the peer it names until one
   * delivers or MAX_PEER_ATTEMPTS failed (each failure is reported with the next claim). Returns
   * the lease when this node is to go upstream; undefined when done or when the upstream should
   * be asked without one (no coordinator answered, or every named peer failed).
   */
  private async fromSwarm (peers: PeerLookupInit): Promise<ClaimLease | undefined> {
    const { stats, log, digest, signal, kind } = this.init
    const self = peers.swarm.peerId.toString()
    const failed: string[] = []
    const pauses = new Pauses(this.timing.busyRetryFirstMs, this.timing.busyRetryMaxMs)
    for (let round = 0; round <= MAX_PEER_ATTEMPTS && !this.verified; round++) {
      const asked = performance.now()
      const claimed = await peers.swarm.claim({ op: 'claim', key: digest, ...(failed.length > 0 ? { failed: failed.slice(-MAX_FAILED_REPORTED) } : {}), ...(kind === 'blob' ? { pieces: true } : {}) }, signal)
      const claimMs = Math.round((performance.now() - asked) * 10) / 10
      if (claimed === undefined) {
        // No coordinator reachable: the provider records the DHT has, then the upstream.
        await tryProviders(peers, digest, { signal }, async (p, s) => { await this.fromPeer(peers, p, s); return true })
        return undefined
      }
      const { answer, coordinator } = claimed
      if (answer.status === 'fetch') {
        stats.inc('claims_won')
        log.info({ key: digest, coordinator, claimMs }, 'claim won')
        return new ClaimLease(peers.swarm, digest, coordinator, { renewMs: this.timing.claimRenewMs, timeoutMs: this.timing.claimTimeoutMs })
      }
      if (answer.status !== 'join') {
        log.warn({ key: digest, coordinator, answer }, 'claim refused by the coordinator; fetching from the upstream')
        return undefined
      }
      stats.inc('claims_joined')
      log.info({ key: digest, peer: answer.peer, committed: answer.committed, coordinator, claimMs }, 'claim joined')
      if (answer.peer === self || peers.swarm.isDenied(answer.peer)) {
        if (!failed.includes(answer.peer)) failed.push(answer.peer)
        continue
      }
      // The holder fetching it lied to this node before: its hashes and its followers' pieces can't be trusted.
      if (answer.seeder !== undefined && peers.swarm.isDenied(answer.seeder.peer)) {
        if (!failed.includes(answer.seeder.peer)) failed.push(answer.seeder.peer)
        continue
      }
      if (failed.includes(answer.peer) && !answer.committed) {
        // Named again although reported: its lease runs (see ClaimTable), so it is loaded, not
        // dead. Waiting for it costs time; a takeover would cost the upstream a second copy.
        round--
        const pause = pauses.next()
        log.info({ key: digest, peer: answer.peer, waitMs: pause }, 'the holder is alive by its lease; asking it again after a pause')
        await delay(pause, undefined, { signal })
      }
      try {
        const named = { id: peerIdFromString(answer.peer), multiaddrs: parseAddrs(answer.addrs) }
        const others = (answer.others ?? []).filter(o => o.peer !== self).map(o => ({ id: peerIdFromString(o.peer), multiaddrs: parseAddrs(o.addrs) }))
        const seeder = answer.seeder !== undefined && answer.seeder.peer !== self ? { id: peerIdFromString(answer.seeder.peer), multiaddrs: parseAddrs(answer.seeder.addrs) } : named
        if (!await this.fromPieces(peers, named, others, seeder, signal)) await this.fromNamedPeer(peers, named, signal)
        stats.inc('upstream_fetches_saved')
      } catch (err) {
        if (!(err instanceof PeerFetchError) || signal.aborted) throw err
        log.info({ key: digest, peer: err.peer, reason: err.reason, err: err.message }, 'peer fetch failed; asking the coordinator again')
        // A holder whose copy started over did nothing wrong, and will have it again.
        if (err.reason !== 'restarted' && !failed.includes(answer.peer)) failed.push(answer.peer)
      }
    }
    return undefined
  }

  /**
   * `fromPeer` from the holder a claim named. While it answers `busy`, any other holder the DHT
   * knows is tried (one that stored it, or the one fetching it), else the named one is asked
   * again after a pause (see BUSY_RETRY_MAX_MS): busy is never a failure. Throws the named
   * holder's other failures (dead, stalled, lying).
   */
  private async fromNamedPeer (peers: PeerLookupInit, peer: PeerRef, signal: AbortSignal): Promise<void> {
    const named = peer.id.toString()
    const self = peers.swarm.peerId.toString()
    const pauses = new Pauses(this.timing.busyRetryFirstMs, this.timing.busyRetryMaxMs)
    for (let busy = 1; ; busy++) {
      try {
        await this.fromPeer(peers, peer, signal)
        return
      } catch (err) {
        if (!(err instanceof PeerFetchError) || err.reason !== 'busy') throw err
      }
      this.init.stats.inc('peer_busy_answers')
      const other = await tryProviders(peers, this.digest, { signal, exclude: new Set([named, self]) }, async (p, s) => { await this.fromPeer(peers, p, s); return true })
      if (other === true) return
      const pause = pauses.next()
      this.init.log.debug({ key: this.digest, peer: named, busy, waitMs: pause }, 'peer busy and no other holder could serve; asking it again')
      await delay(pause, undefined, { signal })
    }
  }

  /**
   * Fetches the blob in pieces from every holder at once (issue 23): piece hashes from `seeder`
   * (the holder fetching it, or `named` itself), pieces from `named`, the seeder and `others` (see
   * fetchPieces), each verified before it is written, so this node serves them to others as they
   * arrive (`piecewise`). False when the seeder speaks no pieces (an older version) or this is a
   * manifest: the caller reads it whole from `named` instead. When the whole blob does not match
   * its digest, the hash source vouched for every piece: it is deny-listed (if it was the only
   * one) and the file starts over.
   * @throws PeerFetchError of the hash source, or of the last holder, when the pieces can't be had
   */
  private async fromPieces (peers: PeerLookupInit, named: PeerRef, others: PeerRef[], seeder: PeerRef, signal: AbortSignal): Promise<boolean> {
    const { store, stats, digest, kind, log } = this.init
    if (kind !== 'blob') return false
    const name = seeder.id.toString()
    let first
    // Busy (its upstream has not answered yet, it is hashing its stored copy, or it serves
    // CACHE_MAX_UPLOADS): alive, asked again.
    for (const pauses = new Pauses(this.timing.busyRetryFirstMs, this.timing.busyRetryMaxMs); ;) {
      try {
        first = await peers.swarm.pieceHashes(seeder, digest, 0, { signal, idleMs: peers.idleMs })
        break
      } catch (err) {
        if (err instanceof PeerFetchError && err.reason === 'refused') return false
        if (!(err instanceof PeerFetchError) || err.reason !== 'busy') throw err
      }
      stats.inc('peer_busy_answers')
      await delay(pauses.next(), undefined, { signal })
    }
    if (first.size > store.maxSize) throw new PeerFetchError(name, 'too_large', `announced ${first.size} bytes, more than the ${store.maxSize} this node takes`)
    if (this.size !== undefined && this.written > 0 && this.size !== first.size) await this.restart()
    const map = new PieceMap(first.size, undefined, this.written, this.ahead.keys())
    map.addHashes(first.from, first.hashes)
    const sources = new PieceSources(named, name === named.id.toString() ? others : [seeder, ...others], { isDenied: peer => peers.swarm.isDenied(peer) }, name)
    const hashSource = sources.all.find(s => s.name === name)
    if (hashSource !== undefined) sources.served(hashSource, first.have)
    if (first.have < first.size) stats.inc('peer_inflight_joins')
    this.size = first.size
    this.cache = 'PEER'
    this.origin = named.id.toString()
    this.piecewise = true
    this.contributors.add(name)
    this.sourced = true
    this.readyState.resolve({ size: first.size })
    log.debug({ key: digest, peer: named.id.toString(), seeder: name, size: first.size, pieces: map.count, others: others.length, epoch: first.epoch }, 'fetching pieces')
    let outcome
    try {
      outcome = await fetchPieces({
        network: peers.swarm,
        digest,
        map,
        sources,
        hashSource: seeder,
        hashEpoch: first.epoch,
        write: async (start, chunks, hash) => { await this.writePiece(start, chunks, hash) },
        signal,
        idleMs: peers.idleMs,
        stats,
        log,
        timing: this.init.pieceTiming
      })
    } catch (err) {
      // Pieces checked against hashes that turned out wrong, or of a copy that is gone, are suspect.
      if (err instanceof PeerFetchError && (err.reason === 'restarted' || err.reason === 'mismatch')) await this.restart()
      throw err
    }
    try {
      this.file().verify(`peer ${name} (piece hashes)`)
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err
      stats.inc('errors')
      // Every piece matched the hash source's hashes: its hashes (and bytes) were wrong.
      if (this.contributors.size === 1) {
        peers.swarm.deny(name, err.message)
        stats.inc('peers_denied')
      }
      await this.restart()
      throw new PeerFetchError(name, 'mismatch', err.message)
    }
    // The hash source was right: whoever sent pieces that did not match its hashes was wrong.
    for (const peer of outcome.suspects) {
      peers.swarm.deny(peer, `sent a piece of ${digest} that did not match its piece hash`)
      stats.inc('peers_denied')
    }
    this.hasher.finish()
    this.verified = true
    this.notify()
    return true
  }

  /** Fetches what is still missing from one peer, streaming it into the file; verified at the end. */
  private async fromPeer (peers: PeerLookupInit, peer: PeerRef, signal: AbortSignal): Promise<void> {
    const { store, stats, digest, kind } = this.init
    // Appended from `written` on: pieces written ahead are overwritten, not adopted.
    this.ahead.clear()
    let stated: string | undefined
    try {
      await fetchVerified(peers, peer, {
        request: { key: digest, start: this.written },
        signal,
        maxSize: kind === 'manifest' ? MAX_MANIFEST_BYTES : store.maxSize,
        contributors: this.contributors,
        open: blob => {
          this.size = blob.size
          this.cache = 'PEER'
          this.origin = blob.peer
          stated = blob.mediaType
          if (blob.inProgress) stats.inc('peer_inflight_joins')
          this.sourced = true
          this.readyState.resolve({ size: blob.size })
          return { write: async chunks => { await this.append(chunks, true) }, verify: source => { this.file().verify(source) } }
        }
      })
    } catch (err) {
      // Bytes that did not verify are of no use to anyone: start the file over.
      if (err instanceof PeerFetchError && err.reason === 'mismatch') await this.restart()
      throw err
    }
    if (kind === 'manifest') this.mediaType = await this.vouchedMediaType(peer.id.toString(), stated)
    this.hasher.finish()
    this.verified = true
    this.notify()
  }

  /**
   * A peer's digest covers a manifest's body, not the type it states: that is taken only if it
   * is a manifest type and agrees with the type the body declares (when it declares one).
   */
  private async vouchedMediaType (peer: string, stated: string | undefined): Promise<string> {
    const declared = declaredMediaType(await this.readWritten())
    const known = stated !== undefined && MANIFEST_TYPES.includes(stated) ? stated : undefined
    const mediaType = declared ?? known
    if (mediaType === undefined || (known !== undefined && known !== mediaType)) {
      await this.restart()
      throw new PeerFetchError(peer, 'refused', `has ${this.digest} without a manifest media type it can vouch for (header ${stated ?? 'none'}, body ${declared ?? 'none'})`)
    }
    return mediaType
  }

  /** The bytes written so far (a manifest: small). */
  private async readWritten (): Promise<Buffer> {
    const body = Buffer.alloc(this.written)
    if (this.readFile !== undefined && this.written > 0) await this.readFile.read(body, 0, this.written, 0)
    return body
  }

  /** The upstream; when it is unreachable, any provider the DHT knows (an outage is when peers matter). */
  private async fromUpstreamOrPeers (): Promise<void> {
    const { peers, digest, signal } = this.init
    try {
      await this.fromUpstream()
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError) || peers === undefined || signal.aborted) throw err
      const found = await tryProviders(peers, digest, { signal }, async (p, s) => { await this.fromPeer(peers, p, s); return true })
      if (found === undefined) throw err
    }
  }

  /** The upstream, resuming with a Range after what peers delivered when it can. */
  private async fromUpstream (): Promise<void> {
    const { client, repo, stats, digest, kind, signal } = this.init
    const manifest = kind === 'manifest'
    // A manifest is small and registries need not serve ranges of one: fetched whole.
    if (manifest && this.written > 0) await this.restart()
    this.ahead.clear()
    let refetchedWhole = false
    let resumes = 0
    for (;;) {
      const resumeAt = this.written
      const headers: Record<string, string> = manifest ? { accept: DEFAULT_MANIFEST_ACCEPT } : {}
      if (resumeAt > 0) headers.range = `bytes=${resumeAt}-`
      const res = await client.sendOk('GET', repo, `/v2/${repo}/${manifest ? 'manifests' : 'blobs'}/${digest}`, headers, signal)
      try {
        const length = res.headers['content-length']
        let size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined
        if (resumeAt > 0) {
          const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : undefined
          if (range?.start === resumeAt) {
            size = range.total
          } else if (res.status === 200) {
            await this.restart()
          } else {
            throw new UpstreamUnavailableError(client.name, `answered ${res.status} with Content-Range ${res.headers['content-range'] ?? '(none)'} to a request from byte ${resumeAt}`)
          }
        }
        if (manifest && size !== undefined && size > MAX_MANIFEST_BYTES) throw tooLarge(client.name, repo, digest)
        this.size = size
        this.cache = 'MISS'
        this.origin = client.name
        if (manifest) this.mediaType = (res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
        this.sourced = true
        this.readyState.resolve({ size })
        // Chunks that arrived while the last batch was written go together (the body pauses at
        // WRITE_BATCH): one awaited write per ~64 KiB chunk leaves the thread pool, not the
        // network, as the bottleneck. A chunk that arrives alone is written at once.
        let announced = false
        for await (const batch of bodyBatches(res.body, WRITE_BATCH)) {
          let batchBytes = 0
          for (const buf of batch) batchBytes += buf.byteLength
          stats.inc('bytes_from_upstream', batchBytes)
          if (manifest && this.written + batchBytes > MAX_MANIFEST_BYTES) throw tooLarge(client.name, repo, digest)
          await this.append(batch, false)
          if (!announced) {
            // Announced while it arrives, not at commit, so a provider lookup finds it in progress
            // (claims find it at once). After the first bytes: a DHT provide is a burst of work
            // that would otherwise delay them. (A node reading from a peer announces at commit.)
            announced = true
            this.init.peers?.swarm.announce(digest, { now: true })
          }
        }
        if (this.size !== undefined && this.written !== this.size) {
          throw new UpstreamUnavailableError(client.name, `${kind} ${digest} truncated at ${this.written} of ${this.size} bytes`)
        }
      } catch (err) {
        discard(res.body)
        // The upstream dropped the connection mid-blob after sending something: ask for the
        // rest with a Range, so the clients reading this download see one whole transfer.
        if (!manifest && !signal.aborted && this.written > resumeAt && resumes < MAX_UPSTREAM_RESUMES &&
            !(err instanceof OciError) && !(err instanceof DigestMismatchError) && !(err instanceof StoreFullError)) {
          resumes++
          this.init.log.info({ digest, upstream: client.name, at: this.written, size: this.size, err: (err as Error).message }, 'upstream dropped mid-blob; resuming with a Range')
          continue
        }
        throw err
      }
      try {
        this.file().verify(`upstream ${client.name}`)
      } catch (err) {
        // Peer bytes before the resumed part may be what is wrong: once, fetch it all again.
        // Nobody is deny-listed: which source was wrong is unknowable from one digest.
        if (!(err instanceof DigestMismatchError) || this.peerBytes === 0 || refetchedWhole) throw err
        this.init.log.warn({ digest, peers: [...this.contributors], err: err.message }, 'bytes resumed from peers did not verify; fetching the whole blob from the upstream')
        refetchedWhole = true
        await this.restart()
        continue
      }
      if (manifest && !MANIFEST_TYPES.includes(this.mediaType ?? '')) {
        // A generic Content-Type (application/octet-stream): the stored type is the body's.
        this.mediaType = manifestTypeOfBody(await this.readWritten()) ?? this.mediaType
      }
      this.hasher.finish()
      this.verified = true
      this.notify()
      return
    }
  }

  /** `hash`: the piece hash of `chunks` when they are one whole verified piece (see `counted`). */
  private async append (chunks: Buffer[], fromPeer: boolean, hash?: string): Promise<void> {
    let bytes = 0
    for (const c of chunks) bytes += c.byteLength
    const writer = this.file()
    try {
      await writer.write(chunks)
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err
      // The filesystem is full (CACHE_MAX_SIZE above its room, or other files on it): older
      // blobs make room for this one, once; failing that, readers get it streamed through.
      const wanted = Math.max(bytes, (this.size ?? 0) - this.written)
      if (await this.init.store.makeRoom(wanted) === 0) { this.passThroughFrom(err, writer); throw err }
      try {
        await writer.write(chunks)
      } catch (again) {
        if (again instanceof StoreFullError) this.passThroughFrom(again, writer)
        throw again
      }
    }
    this.counted(chunks, fromPeer, hash)
  }

  /**
   * `chunks` were written in order: counted, hashed into pieces, and readers woken. A piece that
   * was checked against its `hash` on receipt is not hashed again (a relay's CPU per byte).
   */
  private counted (chunks: Buffer[], fromPeer: boolean, hash?: string): void {
    let bytes = 0
    for (const c of chunks) bytes += c.byteLength
    const known = hash !== undefined && this.hasher.aligned
    // Piece hashes are for peers taking a blob in pieces: not kept without a swarm, nor for manifests.
    const hashing = !known && this.init.peers !== undefined && this.init.kind === 'blob'
    for (const c of chunks) {
      if (hashing) this.hasher.update(c)
      this.written += c.byteLength
      if (fromPeer) this.peerBytes += c.byteLength
    }
    if (known) this.hasher.known(hash, bytes)
    if (this.size !== undefined && this.written === this.size) this.hasher.finish()
    this.notify()
  }

  /** Gives up storing this download (see PassThrough); `writer` undefined when every byte is in and verified. */
  private passThroughFrom (err: StoreFullError, writer: BlobWriter | undefined): void {
    this.init.store.markFull(err)
    this.init.stats.inc('store_full_events')
    this.passThrough = { written: this.written, hash: writer?.hashState() }
    this.init.log.warn({ digest: this.digest, written: this.written, size: this.size }, 'store full: serving this blob without storing it')
  }

  /** A fresh temporary file: at start, or after bytes that can't be kept. */
  private async restart (): Promise<void> {
    await this.writer?.abort()
    await this.readFile?.close().catch(() => {})
    this.writer = undefined
    this.readFile = undefined
    this.written = 0
    this.peerBytes = 0
    this.hasher = new PieceHasher()
    this.ahead.clear()
    this.piecewise = false
    this.epoch = randomBytes(8).toString('hex')
    this.generation++
    if (this.sourced) {
      this.sourced = false
      this.readyState = pending()
    }
    this.contributors.clear()
    const writer = await this.init.store.createWriter(this.init.digest)
    try {
      this.readFile = await open(writer.tmpPath, 'r')
    } catch (err) {
      await writer.abort()
      throw err
    }
    this.writer = writer
    this.notify()
  }

  private file (): BlobWriter {
    if (this.writer === undefined) throw new Error(`no temporary file for ${this.init.digest}`)
    return this.writer
  }

  private notify (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}

/** A promise with its settle functions (Node 20 has no Promise.withResolvers); never unhandled. */
function pending<T> (): { promise: Promise<T>, resolve: (v: T) => void, reject: (e: Error) => void } {
  let resolve!: (v: T) => void
  let reject!: (e: Error) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  promise.catch(() => {})
  return { promise, resolve, reject }
}

/** `chunks` without their first `n` bytes. */
function trimFront (chunks: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = []
  for (const c of chunks) {
    if (n >= c.byteLength) { n -= c.byteLength; continue }
    out.push(n > 0 ? c.subarray(n) : c)
    n = 0
  }
  return out
}

function tooLarge (upstream: string, repo: string, digest: Digest): OciError {
  return new OciError(502, 'MANIFEST_INVALID', `upstream ${upstream} sent a manifest larger than ${MAX_MANIFEST_BYTES} bytes for ${repo}@${digest}`)
}

/** A coordinator's addresses for a peer; one that does not parse is skipped (dialled by ID). */
function parseAddrs (addrs: string[]): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of addrs) {
    try { out.push(multiaddr(a)) } catch {}
  }
  return out
}
