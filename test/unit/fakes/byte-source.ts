import type { ByteSource, ByteSourceHandlers } from '../../../src/io/byte-source.js'

/**
 * A ByteSource the test drives, with real flow control: `push` delivers a chunk, or holds it
 * while the source is paused (as a yamux window or TCP window would) and delivers it on
 * `resume`. A `pause` takes effect once the current dispatch is over, if its `stillWanted()`
 * holds then. `finish` ends it (with an error: a reset or an early close).
 */
export class FakeByteSource implements ByteSource {
  private handlers: ByteSourceHandlers | undefined
  private held: Buffer[] = []
  private pendingPause: (() => boolean) | undefined
  private finished: { err?: Error } | undefined
  /** The sender is held by flow control. */
  paused = false
  pauses = 0
  resumes = 0
  ended = false

  get listening (): boolean {
    return this.handlers !== undefined
  }

  listen (handlers: ByteSourceHandlers): void {
    this.handlers = handlers
  }

  unlisten (): void {
    this.handlers = undefined
  }

  pause (stillWanted: () => boolean): void {
    this.pendingPause = stillWanted
  }

  resume (): void {
    this.resumes++
    this.pendingPause = undefined
    if (!this.paused) return
    this.paused = false
    while (!this.paused && this.held.length > 0) this.dispatch(this.held.shift() as Buffer)
    if (!this.paused && this.held.length === 0 && this.finished !== undefined) this.deliverEnd()
  }

  /** The sender sends `chunk`: delivered now, or when resumed. */
  push (chunk: Buffer | string): void {
    if (this.finished !== undefined) throw new Error('FakeByteSource: push after finish')
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (this.paused) this.held.push(buf)
    else this.dispatch(buf)
  }

  /** The sender finishes (after what is held), or the transport fails with `err` (at once). */
  finish (err?: Error): void {
    this.finished = err === undefined ? {} : { err }
    if (err !== undefined) {
      this.held = []
      this.deliverEnd()
    } else if (!this.paused) {
      this.deliverEnd()
    }
  }

  /** Bytes sent but held by flow control. */
  get heldBytes (): number {
    return this.held.reduce((n, b) => n + b.byteLength, 0)
  }

  private dispatch (buf: Buffer): void {
    this.handlers?.data(buf)
    const wanted = this.pendingPause
    this.pendingPause = undefined
    if (wanted?.() === true) {
      this.paused = true
      this.pauses++
    }
  }

  private deliverEnd (): void {
    if (this.ended) return
    this.ended = true
    this.handlers?.end(this.finished?.err)
  }
}
