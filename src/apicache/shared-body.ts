import { PassThrough, type Readable } from 'node:stream'

/**
 * One upstream body streamed to every caller that shared its request (an answer too large to
 * store: ApiGetOptions.maxBytes). Each caller takes a reader of the whole body once the shared
 * answer is in; the body flows when as many readers as callers were taken, so none misses its
 * first bytes, at the pace of the slowest (stream backpressure). A reader that is destroyed
 * (its client left) drops out; when none is left, the upstream body is destroyed, which ends
 * the upstream request. An error of the body destroys every reader with it.
 */
export class SharedBody {
  private readonly readers = new Set<PassThrough>()
  /** Readers whose buffer is full: the body waits until each drained or left. */
  private readonly full = new Set<PassThrough>()
  private taken = 0
  private flowing = false

  /** `source`: the body, paused, read by nobody else. */
  constructor (private readonly source: Readable) {
    source.on('error', err => {
      for (const reader of this.readers) reader.destroy(err)
    })
  }

  /**
   * A reader of the whole body for one of the `sharers` callers that shared the request (all
   * of them pass the same number). A reader asked for once the body flows (more readers than
   * `sharers`, or after the body failed) is destroyed with an error: it would miss bytes.
   */
  reader (sharers: number): Readable {
    const reader = new PassThrough()
    // The caller sees the error when it reads; until then it must not be an uncaught 'error'.
    reader.on('error', ignore)
    if (this.flowing || this.source.destroyed) {
      reader.destroy(new Error('the shared upstream body is already being read'))
      return reader
    }
    this.taken++
    this.readers.add(reader)
    reader.on('drain', () => {
      this.drained(reader)
    })
    reader.once('close', () => {
      this.readers.delete(reader)
      this.drained(reader)
      this.endIfUnread()
    })
    if (this.taken >= sharers) this.flow()
    return reader
  }

  /**
   * Copies the body into every reader. Not Readable.pipe to each: a destination destroyed
   * between two chunks (a client that left) would keep the source paused for good.
   */
  private flow (): void {
    this.flowing = true
    this.source.on('data', (chunk: Buffer) => {
      for (const reader of this.readers) {
        if (!reader.destroyed && !reader.write(chunk)) this.full.add(reader)
      }
      if (this.full.size > 0) this.source.pause()
    })
    this.source.on('end', () => {
      for (const reader of this.readers) reader.end()
    })
    this.source.resume()
    this.endIfUnread()
  }

  /** `reader` drained or left: the body goes on once no reader is full. */
  private drained (reader: PassThrough): void {
    if (this.full.delete(reader) && this.full.size === 0 && this.flowing) this.source.resume()
  }

  /** Nobody reads the body any more: the upstream request ends. */
  private endIfUnread (): void {
    if (this.flowing && this.readers.size === 0 && !this.source.readableEnded) this.source.destroy()
  }
}

/** An error listener that leaves the error to the reader's consumer. */
function ignore (): void {}
