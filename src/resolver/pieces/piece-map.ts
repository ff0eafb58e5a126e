import type { AbortOptions } from '@libp2p/interface'
import { PIECE_SIZE } from '../../p2p/constants.js'

const MISSING = 0
const ASSIGNED = 1
const DONE = 2

/**
 * A receiver's view of one blob cut into pieces (issue 23): which pieces are missing, asked for
 * (assigned to a transfer) or done (verified and written), and the piece hashes known so far from
 * the one holder this receiver takes them from. Pure state: no I/O.
 */
export class PieceMap {
  readonly count: number
  private readonly state: Uint8Array
  private readonly hashes: string[] = []
  private completed = 0
  private waiters: Array<() => void> = []
  /** Called when a transfer starts waiting for a hash (see `hashWanted`). */
  private readonly wantedListeners = new Set<() => void>()
  private hashFailure: Error | undefined

  /**
   * `done`: byte offsets of pieces already in the file (written in order up to `prefix`, or ahead).
   * A piece that `prefix` covers only in part is fetched again (its hash covers the whole piece).
   */
  constructor (readonly size: number, readonly pieceSize = PIECE_SIZE, prefix = 0, done: Iterable<number> = []) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`a piece map needs a positive size, not ${size}`)
    this.count = Math.ceil(size / pieceSize)
    this.state = new Uint8Array(this.count)
    const whole = Math.min(this.count, Math.floor(prefix / pieceSize) + (prefix >= size ? 1 : 0))
    for (let i = 0; i < whole; i++) this.mark(i)
    for (const offset of done) if (offset % pieceSize === 0 && offset < size) this.mark(offset / pieceSize)
  }

  /** First byte of piece `i`. */
  start (i: number): number {
    return i * this.pieceSize
  }

  /** One past the last byte of piece `i`. */
  end (i: number): number {
    return Math.min(this.size, (i + 1) * this.pieceSize)
  }

  length (i: number): number {
    return this.end(i) - this.start(i)
  }

  /** Every piece is done. */
  get done (): boolean {
    return this.completed === this.count
  }

  get doneCount (): number {
    return this.completed
  }

  isDone (i: number): boolean {
    return this.state[i] === DONE
  }

  /** The lowest piece at or after `from` that is neither done nor asked for; -1 when none. */
  nextMissing (from = 0): number {
    for (let i = Math.max(0, from); i < this.count; i++) if (this.state[i] === MISSING) return i
    return -1
  }

  /**
   * Assigns the missing pieces from `first` on, up to `max` of them and stopping at the first
   * that is not missing. Returns one past the last piece assigned.
   */
  assign (first: number, max: number): number {
    let i = first
    while (i < this.count && i < first + max && this.state[i] === MISSING) this.state[i++] = ASSIGNED
    return i
  }

  /** Pieces [first, last) that were assigned and not done are missing again (their transfer ended). */
  unassign (first: number, last: number): void {
    for (let i = first; i < last && i < this.count; i++) if (this.state[i] === ASSIGNED) this.state[i] = MISSING
  }

  /** Piece `i` verified and was written. */
  complete (i: number): void {
    this.mark(i)
  }

  /** Hashes known in order from piece 0 (a piece's hash is needed before it can be written). */
  get hashesKnown (): number {
    return this.hashes.length
  }

  /**
   * Adds hashes of pieces `from`, `from + 1`, ... from the hash source; those already known are
   * skipped. Throws RangeError for a gap (from past the known ones) or more hashes than pieces.
   */
  addHashes (from: number, list: string[]): void {
    if (from > this.hashes.length) throw new RangeError(`piece hashes from ${from} leave a gap after ${this.hashes.length}`)
    if (from + list.length > this.count) throw new RangeError(`${from + list.length} piece hashes for a blob of ${this.count} pieces`)
    for (let k = this.hashes.length - from; k < list.length; k++) this.hashes.push(list[k] as string)
    this.wake()
  }

  /**
   * The hash of piece `i`, once the hash source sent it; rejects when `signal` aborts or the hash
   * source failed (`failHashes`).
   */
  async hash (i: number, options: Required<AbortOptions>): Promise<string> {
    const { signal } = options
    for (;;) {
      const known = this.hashes[i]
      if (known !== undefined) return known
      if (this.hashFailure !== undefined) throw this.hashFailure
      signal.throwIfAborted()
      await new Promise<void>(resolve => {
        const wake = (): void => {
          signal.removeEventListener('abort', wake)
          resolve()
        }
        signal.addEventListener('abort', wake, { once: true })
        this.waiters.push(wake)
        for (const wanted of Array.from(this.wantedListeners)) wanted()
      })
    }
  }

  /**
   * Resolves after `ms`, or at once when a transfer waits for a hash not known yet (now or
   * meanwhile), or when `signal` aborts: the hash follower's pause between requests, so hashes
   * are asked for in batches unless a verified piece is held up by one.
   */
  async hashWanted (ms: number, options: Required<AbortOptions>): Promise<void> {
    const { signal } = options
    if (this.waiters.length > 0 || signal.aborted) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.wantedListeners.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      this.wantedListeners.add(done)
    })
  }

  /** No more hashes will come: waiting transfers fail with `err`. */
  failHashes (err: Error): void {
    this.hashFailure = err
    this.wake()
  }

  private mark (i: number): void {
    if (this.state[i] === DONE) return
    this.state[i] = DONE
    this.completed++
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}
