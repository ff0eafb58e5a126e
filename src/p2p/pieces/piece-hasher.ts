import { createHash, type Hash } from 'node:crypto'
import { PIECE_SIZE } from '../constants.js'

/** The sha256 of one piece, as 64 lowercase hex characters (what fetch/1.2.0 hands out). */
export function pieceHash (chunks: Uint8Array[]): string {
  const hash = createHash('sha256')
  for (const c of chunks) hash.update(c)
  return hash.digest('hex')
}

/** How many pieces of `pieceSize` bytes a blob of `size` bytes has (the last may be shorter). */
export function pieceCount (size: number, pieceSize = PIECE_SIZE): number {
  return Math.ceil(size / pieceSize)
}

/**
 * The piece hashes of a blob whose bytes arrive in order: each PIECE_SIZE piece's sha256 once its
 * last byte is in, and the last (shorter) piece's at `finish`. A node hands these to peers that
 * fetch pieces from anyone (issue 23); they are only as good as the bytes hashed, which is why a
 * receiver takes them from one node only, the one the final digest then holds to account.
 */
export class PieceHasher {
  private readonly done: string[] = []
  private hash: Hash = createHash('sha256')
  private inPiece = 0
  private isFinished = false

  constructor (readonly pieceSize = PIECE_SIZE) {}

  /** Every piece is hashed (`finish` was called). */
  get finished (): boolean {
    return this.isFinished
  }

  /** Pieces hashed so far. */
  get count (): number {
    return this.done.length
  }

  /** Hashes the next bytes of the blob (in order). */
  update (chunk: Uint8Array): void {
    if (this.isFinished) throw new Error('piece hasher updated after finish')
    let at = 0
    while (at < chunk.byteLength) {
      const n = Math.min(chunk.byteLength - at, this.pieceSize - this.inPiece)
      this.hash.update(chunk.subarray(at, at + n))
      at += n
      this.inPiece += n
      if (this.inPiece === this.pieceSize) this.close()
    }
  }

  /**
   * The next piece, whose hash is already known (it was checked against it on receipt): counted
   * without hashing its bytes again. `length` below the piece size ends the blob.
   * @throws Error unless the hasher is at a piece boundary
   */
  known (hash: string, length: number): void {
    if (this.isFinished || this.inPiece !== 0 || length > this.pieceSize) {
      throw new Error('piece hasher given a known piece off a piece boundary')
    }
    this.done.push(hash)
    if (length < this.pieceSize) this.isFinished = true
  }

  /** At a piece boundary: the next bytes start a piece. */
  get aligned (): boolean {
    return this.inPiece === 0 && !this.isFinished
  }

  /** The blob is whole: a partial last piece gets its hash. Idempotent. */
  finish (): void {
    if (this.isFinished) return
    if (this.inPiece > 0) this.close()
    this.isFinished = true
  }

  /** Up to `max` hashes from piece `from` on, concatenated (64 hex characters each). */
  hex (from: number, max: number): string {
    return this.done.slice(from, from + max).join('')
  }

  private close (): void {
    this.done.push(this.hash.digest('hex'))
    this.hash = createHash('sha256')
    this.inPiece = 0
  }
}

/** The piece hashes of a whole stream of bytes (a stored blob's file). */
export async function hashPieces (body: AsyncIterable<Uint8Array>, pieceSize = PIECE_SIZE): Promise<PieceHasher> {
  const hasher = new PieceHasher(pieceSize)
  for await (const chunk of body) hasher.update(chunk)
  hasher.finish()
  return hasher
}
