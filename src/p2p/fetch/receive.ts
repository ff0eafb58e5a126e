import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { MAX_READ_BUFFER, PEER_MIN_RATE, PEER_RATE_GRACE_MS, RECEIVE_HIGH_WATER } from '../constants.js'
import { PeerFetchError } from './errors.js'

/**
 * Yields exactly `length` bytes from a libp2p stream, in batches of whatever arrived while the
 * consumer was busy (so a file writer does one vectored write per batch, not one per frame).
 * Backpressure: above RECEIVE_HIGH_WATER buffered bytes the stream is paused, which stops
 * yamux granting window to the sender; it resumes when the consumer takes the batch.
 * Completion is counted in bytes, not taken from close events, which can fire while data is
 * still buffered. No data for `idleMs`, or (unless `minRate` is false) less than PEER_MIN_RATE
 * on average after a grace period, fails with reason `stalled`.
 *
 * Listeners are attached at the call, not at the first `next()`: bytes that arrived with the
 * header are handed back by the length-prefixed reader and re-emitted at once.
 */
export function receive (stream: Stream, peer: string, length: number, idleMs: number, signal: AbortSignal, opts: { minRate?: boolean } = {}): { body: AsyncGenerator<Buffer[]>, stop: () => void } {
  stream.maxReadBufferLength = MAX_READ_BUFFER
  let queue: Buffer[] = []
  let queued = 0
  let closed = false
  let error: Error | undefined
  let wake: (() => void) | undefined
  const notify = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const onMessage = (evt: StreamMessageEvent): void => {
    const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    queue.push(buf)
    queued += buf.byteLength
    // A pause() inside a 'message' handler dispatched by resume() is undone by resume itself:
    // defer it, and re-check that the consumer has not drained the queue meanwhile.
    if (queued >= RECEIVE_HIGH_WATER) queueMicrotask(() => { if (queued >= RECEIVE_HIGH_WATER && stream.readStatus === 'readable') stream.pause() })
    notify()
  }
  const onClose = (evt: StreamCloseEvent): void => {
    closed = true
    error ??= evt.error
    notify()
  }
  const onEnd = (): void => {
    closed = true
    notify()
  }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('close', onClose)
  stream.addEventListener('end', onEnd)
  const onAbort = (): void => {
    error ??= signal.reason instanceof Error ? signal.reason : new Error('aborted')
    notify()
  }
  signal.addEventListener('abort', onAbort)
  let timer: NodeJS.Timeout | undefined
  // Also called when the body is never iterated (header-only answers, refused transfers).
  const stop = (): void => {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
    stream.removeEventListener('message', onMessage)
    stream.removeEventListener('close', onClose)
    stream.removeEventListener('end', onEnd)
    if (stream.readStatus === 'paused') stream.resume()
  }
  const started = Date.now()
  const body = (async function * () {
    let delivered = 0
    try {
      while (delivered < length) {
        // A peer that trickles (each chunk inside the idle budget) is as bad as a silent one.
        const elapsed = Date.now() - started
        if (opts.minRate !== false && elapsed > PEER_RATE_GRACE_MS && delivered / (elapsed / 1000) < PEER_MIN_RATE) {
          throw new PeerFetchError(peer, 'stalled', `sent ${delivered} bytes in ${elapsed} ms, below ${PEER_MIN_RATE} bytes/s`)
        }
        if (queued > 0) {
          const batch = queue
          const bytes = queued
          queue = []
          queued = 0
          if (stream.readStatus === 'paused') stream.resume()
          if (delivered + bytes > length) {
            throw new PeerFetchError(peer, 'protocol', `sent more than the ${length} bytes it announced`)
          }
          delivered += bytes
          yield batch
          continue
        }
        if (error !== undefined) {
          throw error instanceof PeerFetchError ? error : new PeerFetchError(peer, 'truncated', `stream failed after ${delivered} of ${length} bytes: ${error.message}`)
        }
        if (closed || stream.readableEnded) {
          throw new PeerFetchError(peer, 'truncated', `closed the stream after ${delivered} of ${length} bytes`)
        }
        await new Promise<void>((resolve, reject) => {
          wake = resolve
          timer = setTimeout(() => {
            wake = undefined
            reject(new PeerFetchError(peer, 'stalled', `sent nothing for ${idleMs} ms (after ${delivered} of ${length} bytes)`))
          }, idleMs)
        }).finally(() => clearTimeout(timer))
      }
    } finally {
      stop()
    }
  })()
  return { body, stop }
}
