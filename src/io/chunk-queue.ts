import type { ByteSource } from './byte-source.js'

/**
 * The chunks a ByteSource delivered and the consumer has not taken yet, for consumers that take
 * them in batches (one vectored file write per batch, no join). Above `highWater` queued bytes
 * the source is paused; `take` resumes it. `next` resolves on the next chunk, the end, or `fail`.
 */
export class ChunkQueue {
  private chunks: Buffer[] = []
  /** Bytes queued. */
  bytes = 0
  /** The source ended (`error` says whether it failed). */
  ended = false
  error: Error | undefined
  private wake: (() => void) | undefined

  constructor (private readonly source: ByteSource, highWater: number) {
    const full = (): boolean => this.bytes >= highWater
    source.listen({
      data: buf => {
        this.chunks.push(buf)
        this.bytes += buf.byteLength
        if (full()) source.pause(full)
        this.notify()
      },
      end: err => {
        this.ended = true
        this.error ??= err
        this.notify()
      }
    })
  }

  /** Everything queued, in order; the source may send again. */
  take (): Buffer[] {
    const batch = this.chunks
    this.chunks = []
    this.bytes = 0
    this.source.resume()
    return batch
  }

  /** Ends the wait with `err` (an abort, a timeout decided by the consumer). */
  fail (err: Error): void {
    this.error ??= err
    this.notify()
  }

  /** Resolves when something happens: a chunk, the end, a failure. */
  async next (): Promise<void> {
    await new Promise<void>(resolve => {
      this.wake = resolve
    })
  }

  /** Stops listening. */
  close (): void {
    this.source.unlisten()
  }

  private notify (): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }
}
