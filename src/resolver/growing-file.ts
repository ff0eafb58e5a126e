import type { AbortOptions } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest, DigestVerifier } from '../oci/digest.js'
import type { StoreWriter } from '../store/roles.js'
import type { BlobRecord } from '../store/record.js'
import type { BlobWriter } from '../store/writer.js'
import { StoreFullError } from '../store/errors.js'
import type { Stats } from '../metrics/stats.js'
import { PieceHasher } from '../p2p/pieces/piece-hasher.js'

/** Bytes a reader takes from the temporary file at a time, and its stream's high-water mark. */
const READ_CHUNK = 1024 * 1024

/**
 * The blob's bytes from byte `from` to its end, from somewhere other than the file (the
 * upstream), not stored: each chunk is hashed into `verifier` before it is yielded, and the
 * generator verifies the whole digest before it returns (DigestMismatchError). `signal` aborts
 * when the reader is destroyed. See UpstreamSource.rest.
 */
export type RestOfBlob = (from: number, verifier: DigestVerifier, options: Required<AbortOptions>) => AsyncGenerator<Buffer>

/** What a GrowingFile needs: the digest it fills, the store it writes to, and where readers get the rest once the store is full. */
export interface GrowingFileInit {
  digest: Digest
  /** Makes the temporary file, makes room when the filesystem is full, commits the blob. */
  store: Pick<StoreWriter, 'createWriter' | 'makeRoom' | 'markFull' | 'commit'>
  stats: Stats
  log: Logger
  /**
   * Keep piece hashes of the bytes written in order, for peers that take the blob in pieces
   * (issue 23): a blob with a swarm. Without, `pieceHashes` has only the hashes given to
   * `writePiece`.
   */
  hashPieces: boolean
  /** The rest of the blob for readers once the store is full (see PassThrough). */
  rest: RestOfBlob
  /**
   * Called when the file starts over, once the old file is gone and before the new one is made
   * (in the same synchronous step as the reset of the file's own state): the download forgets
   * its source.
   */
  onRestart?: () => void
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
 * What a source (upstream-source.ts, holder-source.ts) does with the growing file: the writing
 * side of GrowingFile. Sizes and offsets are in bytes.
 */
export interface SourceFile {
  /** Bytes [0, written) are in the file, in order (hashed into the digest). */
  readonly written: number
  /** The whole size, once a source stated it. */
  readonly size: number | undefined
  /** The whole digest matched, and `complete` was called. */
  readonly verified: boolean
  /** Of the bytes written, those that came from peers. */
  readonly peerBytes: number
  /** Peers whose bytes are in the file (a source adds to it; cleared when the file starts over). */
  readonly contributors: Set<string>
  /** Offsets of the pieces written ahead of `written` (out of order) and not yet adopted. */
  aheadOffsets: () => Iterable<number>
  /** Forgets the pieces written ahead: the next bytes are appended from `written` on, over them. */
  dropAhead: () => void
  /**
   * Appends `chunks` at `written`. `fromPeer`: counted in `peerBytes`. `hash`: the piece hash of
   * `chunks` when they are one whole piece checked against it on receipt (not hashed again).
   * @throws StoreFullError when there is no room even after making some (readers then pass through)
   */
  append: (chunks: Buffer[], fromPeer: boolean, hash?: string) => Promise<void>
  /** Writes a verified piece at byte `start`, in or out of order (see GrowingFile.writePiece). */
  writePiece: (start: number, chunks: Buffer[], hash?: string) => Promise<void>
  /** @throws DigestMismatchError unless the bytes written hash to the digest (`source` names who sent them) */
  verify: (source: string) => void
  /** The digest matched and the source is done: readers get the last byte, waiters wake. */
  complete: () => void
  /** The bytes written so far (for a manifest: small). */
  readWritten: () => Promise<Buffer>
  /** Starts over with an empty file (see GrowingFile.restart). */
  restart: () => Promise<void>
}

/**
 * The temporary file of one download, filled by its sources while any number of readers (HTTP
 * clients, and peers through the fetch protocol) follow it as it grows, each at its own pace.
 *
 * Bytes are appended in order; verified pieces may also come out of order (written ahead, then
 * adopted once the bytes before them are in). The last byte of a reader's span is held back
 * until the whole digest verified (`complete`), so a client never holds a complete wrong blob,
 * whoever sent it; a reader of pieces (it checks piece hashes) waits only for the blob's own
 * last byte. When the file starts over (`restart`: wrong bytes from a peer, an upstream that
 * ignored a Range), a reader that already had some of its bytes is cut (its client retries), and
 * the copy gets a new `epoch`. When the filesystem fills up, nothing is stored: readers get the
 * rest streamed through from `rest` (see PassThrough).
 *
 * Call `restart` once before anything else: it makes the first file.
 */
export class GrowingFile implements SourceFile {
  /** The whole size in bytes, once a source stated it (set by the download; kept across restarts). */
  size: number | undefined
  /** Peers whose bytes are in the file. */
  readonly contributors = new Set<string>()
  private bytesWritten = 0
  private isVerified = false
  private failure: Error | undefined
  /** Bumped whenever the temporary file starts over: readers that had bytes of it are cut. */
  private generation = 0
  private copy = randomBytes(8).toString('hex')
  /** Bytes in the temporary file that came from peers. */
  private fromPeers = 0
  /** Piece hashes of the bytes written in order, handed to peers that fetch pieces (issue 23). */
  private hasher = new PieceHasher()
  /** Pieces written ahead of `written` (out of order), by offset: their length and verified hash. */
  private readonly ahead = new Map<number, { length: number, hash: string | undefined }>()
  /** The last piece write queued (see writePiece). */
  private pieceWrites: Promise<void> = Promise.resolve()
  private blobWriter: BlobWriter | undefined
  private readFile: FileHandle | undefined
  /** Set when the download failed for want of space: readers finish from the upstream (see `passThroughChunks`). */
  private passThrough: PassThrough | undefined
  private waiters: Array<() => void> = []

  constructor (private readonly init: GrowingFileInit) {}

  get written (): number {
    return this.bytesWritten
  }

  /** The digest matched: readers may have the last byte (the file may not be durable yet). */
  get verified (): boolean {
    return this.isVerified
  }

  get peerBytes (): number {
    return this.fromPeers
  }

  /** Why the download failed (see `fail`); undefined while it runs or once it succeeded. */
  get error (): Error | undefined {
    return this.failure
  }

  /**
   * Names this copy for peers that take its pieces: a new random value whenever the file starts
   * over, so a receiver never mixes piece hashes of one copy with pieces of another.
   */
  get epoch (): string {
    return this.copy
  }

  /**
   * The download failed with `err`: readers are cut with it at their next wake (or finish from
   * the upstream when the store was full, see PassThrough), and waiters for piece hashes give up.
   * Call `wake` after.
   */
  fail (err: Error): void {
    this.failure = err
  }

  /** Wakes every reader and waiter to look at the file again. */
  wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  /**
   * Up to `max` piece hashes of the bytes written, from piece `from` (concatenated hex); waits
   * for the next piece when there is none yet, until `signal` aborts (then '').
   */
  async pieceHashes (from: number, max: number, options: Required<AbortOptions>): Promise<string> {
    const { signal } = options
    while (this.hasher.count <= from && this.failure === undefined && !signal.aborted && !(this.isVerified && this.hasher.finished)) {
      await new Promise<void>(resolve => {
        const wake = (): void => {
          signal.removeEventListener('abort', wake)
          resolve()
        }
        signal.addEventListener('abort', wake, { once: true })
        this.waiters.push(wake)
      })
    }
    return this.hasher.hex(from, max)
  }

  /** Offsets of the pieces written ahead, not yet adopted (a live view: read it at once). */
  aheadOffsets (): Iterable<number> {
    return this.ahead.keys()
  }

  /** Forgets the pieces written ahead: the next bytes are appended over them. */
  dropAhead (): void {
    this.ahead.clear()
  }

  /**
   * Writes a verified piece that starts at byte `start` (pieces come out of order): in order
   * when it starts at the end of the bytes written, then any pieces written ahead that now follow;
   * otherwise ahead of them, counted once the bytes before it are in. A piece already written is
   * ignored. `hash`: the piece hash `chunks` were checked against, when they are one whole piece.
   * @throws StoreFullError (see `append`), and the file's I/O errors
   */
  async writePiece (start: number, chunks: Buffer[], hash?: string): Promise<void> {
    // One at a time: the file's end and the ahead list must not change under a write.
    const write = this.pieceWrites.then(async () => {
      await this.putPiece(start, chunks, hash)
    })
    this.pieceWrites = write.catch(() => {})
    await write
  }

  private async putPiece (start: number, chunks: Buffer[], hash: string | undefined): Promise<void> {
    let bytes = 0
    for (const c of chunks) bytes += c.byteLength
    if (start + bytes <= this.bytesWritten || this.ahead.has(start)) return
    if (start > this.bytesWritten) {
      await this.writer().writeAhead(start, chunks)
      this.ahead.set(start, { length: bytes, hash })
      return
    }
    await this.append(trimFront(chunks, this.bytesWritten - start), true, start === this.bytesWritten ? hash : undefined)
    for (let next = this.ahead.get(this.bytesWritten); next !== undefined; next = this.ahead.get(this.bytesWritten)) {
      this.ahead.delete(this.bytesWritten)
      const buf = Buffer.allocUnsafe(next.length)
      const { bytesRead } = await (this.readFile as FileHandle).read(buf, 0, next.length, this.bytesWritten)
      if (bytesRead !== next.length) {
        throw new Error(
          `temporary file of ${this.init.digest} has ${bytesRead} of the ${next.length} bytes written ahead at ${this.bytesWritten}`
        )
      }
      this.writer().adopt([buf])
      this.counted([buf], true, next.hash)
    }
  }

  /**
   * A stream of bytes [start, end) of the blob (`end` exclusive; undefined: to the end) as they
   * arrive. The last byte of the span waits until the digest verified; `pieces` (a peer that
   * checks piece hashes): only the blob's own last byte waits. `forPeer`: a peer's fetch, which
   * is cut rather than finished from the upstream when the store is full (docs/design.md §3.4: nothing is
   * fetched on a peer's behalf). The caller keeps the file open while it reads (see `close`).
   * The stream fails with the download's error, or when the file starts over after it had bytes.
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
          if (this.failure !== undefined) {
            if (forPeer || this.passThrough === undefined || (generation !== this.generation && pos > start)) {
              stream.destroy(this.failure)
              return
            }
            passing ??= this.passThroughChunks(this.passThrough, pos, end ?? this.size, { signal: left.signal })
            const next = await passing.next()
            if (stream.destroyed) return
            if (next.done === true) {
              stream.push(null)
              return
            }
            pos += next.value.byteLength
            if (!stream.push(next.value)) return
            continue
          }
          if (generation !== this.generation) {
            // A peer's piece reader was told which copy (epoch) it reads: never another one.
            if (pos > start || pieces) {
              stream.destroy(
                new Error(
                  `bytes of ${this.init.digest} from a peer or the bucket did not verify; this response was cut before its last byte and nothing was stored — retry the request`
                )
              )
              return
            }
            generation = this.generation
          }
          const stop = end ?? this.size
          // A receiver of pieces checks each one against its hash: only the blob's last byte waits.
          const spanOnly = pieces && stop !== undefined && this.size !== undefined && stop < this.size
          if (stop !== undefined && pos >= stop) {
            if (this.isVerified || spanOnly) {
              stream.push(null)
              return
            }
          } else if (this.isVerified && pos >= this.bytesWritten) {
            stream.push(null)
            return
          }
          // The final byte of the requested span waits for the digest: a client never holds a
          // complete wrong blob, whoever sent it.
          const available = Math.min(this.bytesWritten, stop ?? Infinity)
          const limit = this.isVerified || spanOnly ? available : available - 1
          if (this.isVerified && this.readFile === undefined) throw new Error(`download of ${this.init.digest} lost its temporary file`)
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
      read () {
        void pump(this)
      },
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
   * temporary file holds, then the rest from `rest` (the upstream) without being stored,
   * hashed on from the file's digest state; the last byte waits until the whole blob verified.
   * `signal` aborts when the reader is destroyed (its client left).
   * @throws what `rest` throws (UpstreamUnavailableError, an upstream's OciError, DigestMismatchError)
   */
  private async *passThroughChunks (
    from: PassThrough,
    pos: number,
    stop: number | undefined,
    options: Required<AbortOptions>
  ): AsyncGenerator<Buffer> {
    const digest = this.init.digest
    const file = this.readFile
    const last = stop ?? Infinity
    const fileEnd = Math.min(from.written, last)
    // The span's last byte, when the file has it, waits for the digest like any other.
    const fileHold = from.hash !== undefined && last <= from.written ? 1 : 0
    const fromFile = async function* (to: number): AsyncGenerator<Buffer> {
      while (pos < to) {
        if (file === undefined) throw new Error(`download of ${digest} lost its temporary file`)
        const n = Math.min(to - pos, READ_CHUNK)
        const { bytesRead, buffer } = await file.read(Buffer.allocUnsafe(n), 0, n, pos)
        if (bytesRead === 0) throw new Error(`temporary file of ${digest} ended at ${pos} of ${from.written} bytes`)
        pos += bytesRead
        yield buffer.subarray(0, bytesRead)
      }
    }
    yield* fromFile(fileEnd - fileHold)
    if (from.hash === undefined) return
    const verifier = from.hash.copy()
    let at = from.written
    // One chunk is held until the next arrives: the last one waits until `rest` verified the digest.
    let held: Buffer | undefined
    for await (const chunk of this.init.rest(from.written, verifier, options)) {
      const chunkStart = at
      at += chunk.byteLength
      const lo = Math.max(pos, chunkStart)
      const hi = Math.min(last, at)
      if (hi <= lo) continue
      if (held !== undefined) yield held
      held = chunk.subarray(lo - chunkStart, hi - chunkStart)
      pos = hi
    }
    if (held !== undefined) yield held
    yield* fromFile(fileEnd)
  }

  /**
   * Appends `chunks` in order. `fromPeer`: counted in `peerBytes`. `hash`: the piece hash of
   * `chunks` when they are one whole verified piece (see `counted`). When the filesystem is full,
   * older blobs make room once; failing that the download passes through (see PassThrough).
   * @throws StoreFullError when there is still no room; the file's other I/O errors
   */
  async append (chunks: Buffer[], fromPeer: boolean, hash?: string): Promise<void> {
    let bytes = 0
    for (const c of chunks) bytes += c.byteLength
    const writer = this.writer()
    try {
      await writer.write(chunks)
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err
      // The filesystem is full (CACHE_MAX_SIZE above its room, or other files on it): older
      // blobs make room for this one, once; failing that, readers get it streamed through.
      const wanted = Math.max(bytes, (this.size ?? 0) - this.bytesWritten)
      if (await this.init.store.makeRoom(wanted) === 0) {
        this.passThroughFrom(err, writer)
        throw err
      }
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
    const hashing = !known && this.init.hashPieces
    for (const c of chunks) {
      if (hashing) this.hasher.update(c)
      this.bytesWritten += c.byteLength
      if (fromPeer) this.fromPeers += c.byteLength
    }
    if (known) this.hasher.known(hash, bytes)
    if (this.size !== undefined && this.bytesWritten === this.size) this.hasher.finish()
    this.wake()
  }

  /** Gives up storing this download (see PassThrough); `writer` undefined when every byte is in and verified. */
  private passThroughFrom (err: StoreFullError, writer: BlobWriter | undefined): void {
    this.init.store.markFull(err)
    this.init.stats.inc('store_full_events')
    this.passThrough = { written: this.bytesWritten, hash: writer?.hashState() }
    this.init.log.warn(
      { digest: this.init.digest, written: this.bytesWritten, size: this.size },
      'store full: serving this blob without storing it'
    )
  }

  /** @throws DigestMismatchError unless the bytes written hash to the digest (`source` names who sent them) */
  verify (source: string): void {
    this.writer().verify(source)
  }

  /** The digest matched and the source is done: the piece hashes are final, readers get the last byte. */
  complete (): void {
    this.hasher.finish()
    this.isVerified = true
    this.wake()
  }

  /** The bytes written so far, read back from the file (a manifest: small). */
  async readWritten (): Promise<Buffer> {
    const body = Buffer.alloc(this.bytesWritten)
    if (this.readFile !== undefined && this.bytesWritten > 0) await this.readFile.read(body, 0, this.bytesWritten, 0)
    return body
  }

  /**
   * A fresh temporary file: at start, or after bytes that can't be kept. The old one is removed,
   * the count, piece hashes, pieces written ahead and contributors start from nothing, the copy
   * gets a new epoch, and readers that had bytes of the old one are cut at their next wake.
   * @throws the store's errors making the file (StoreFullError, StoreUnavailableError)
   */
  async restart (): Promise<void> {
    await this.blobWriter?.abort()
    await this.readFile?.close().catch(() => {})
    this.blobWriter = undefined
    this.readFile = undefined
    this.bytesWritten = 0
    this.fromPeers = 0
    this.hasher = new PieceHasher()
    this.ahead.clear()
    this.copy = randomBytes(8).toString('hex')
    this.generation++
    this.init.onRestart?.()
    this.contributors.clear()
    const writer = await this.init.store.createWriter(this.init.digest)
    try {
      this.readFile = await open(writer.tmpPath, 'r')
    } catch (err) {
      await writer.abort()
      throw err
    }
    this.blobWriter = writer
    this.wake()
  }

  /**
   * Commits the verified file to the store as a blob (`source` names where it came from).
   * @throws StoreFullError (readers then take the rest of the file: it is all there), the store's other errors
   */
  async commit (source: string, meta: { mediaType?: string }): Promise<BlobRecord> {
    try {
      return await this.init.store.commit(this.writer(), source, meta)
    } catch (err) {
      // Verified but not storable: readers take the rest of the file.
      if (err instanceof StoreFullError) this.passThroughFrom(err, undefined)
      throw err
    }
  }

  /** Removes the temporary file (the download failed); nothing once it was committed. */
  async abort (): Promise<void> {
    await this.blobWriter?.abort()
  }

  /** Closes the handle readers read through: the last hold on the file was released. */
  close (): void {
    void this.readFile?.close().catch(() => {})
  }

  /** The writer of the current temporary file. */
  private writer (): BlobWriter {
    if (this.blobWriter === undefined) throw new Error(`no temporary file for ${this.init.digest}`)
    return this.blobWriter
  }
}

/** `chunks` without their first `n` bytes. */
function trimFront (chunks: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = []
  for (const c of chunks) {
    if (n >= c.byteLength) {
      n -= c.byteLength
      continue
    }
    out.push(n > 0 ? c.subarray(n) : c)
    n = 0
  }
  return out
}
