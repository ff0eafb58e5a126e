import type { AbortOptions } from '@libp2p/interface'
import { PEER_MIN_RATE, PEER_RATE_GRACE_MS, RECEIVE_HIGH_WATER } from '../constants.js'
import type { ByteSource } from '../../io/byte-source.js'
import { ChunkQueue } from '../../io/chunk-queue.js'
import { PeerFetchError } from './errors.js'
import { systemClock, type Clock } from '../../clock/clock.js'

export interface ReceiveOptions extends Required<AbortOptions> {
  /** False: no PEER_MIN_RATE check (a download in progress sends as fast as it gets the bytes). */
  minRate?: boolean
  /** Times the average rate; default the system clock. */
  clock?: Clock
}

/**
 * Yields exactly `length` bytes from a transport (a libp2p stream or the data channel's socket),
 * in batches of whatever arrived while the consumer was busy (so a file writer does one vectored
 * write per batch, not one per frame).
 * Backpressure: above RECEIVE_HIGH_WATER buffered bytes the source is paused, which stops the
 * sender (yamux window, TCP window); it resumes when the consumer takes the batch.
 * Completion is counted in bytes, not taken from close events, which can fire while data is
 * still buffered. No data for `idleMs`, or (unless `minRate` is false) less than PEER_MIN_RATE
 * on average after a grace period, fails with reason `stalled`; `opts.signal` ends it. `opts.clock` (default the system
 * clock) times that average; the idle budget is a timer.
 *
 * Listeners are attached at the call, not at the first `next()`: bytes that arrived with the
 * header are handed back by the length-prefixed reader and re-emitted at once.
 */
export function receive (
  source: ByteSource,
  peer: string,
  length: number,
  idleMs: number,
  opts: ReceiveOptions
): { body: AsyncGenerator<Buffer[]>, stop: () => void } {
  const { signal } = opts
  const queue = new ChunkQueue(source, RECEIVE_HIGH_WATER)
  const onAbort = (): void => {
    queue.fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
  }
  signal.addEventListener('abort', onAbort)
  let timer: NodeJS.Timeout | undefined
  // Also called when the body is never iterated (header-only answers, refused transfers).
  const stop = (): void => {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
    queue.close()
  }
  const clock = opts.clock ?? systemClock
  const started = clock.now()
  const body = (async function* () {
    let delivered = 0
    try {
      while (delivered < length) {
        // A peer that trickles (each chunk inside the idle budget) is as bad as a silent one.
        const elapsed = clock.now() - started
        if (opts.minRate !== false && elapsed > PEER_RATE_GRACE_MS && delivered / (elapsed / 1000) < PEER_MIN_RATE) {
          throw new PeerFetchError(peer, 'stalled', `sent ${delivered} bytes in ${elapsed} ms, below ${PEER_MIN_RATE} bytes/s`)
        }
        if (queue.bytes > 0) {
          if (delivered + queue.bytes > length) {
            throw new PeerFetchError(peer, 'protocol', `sent more than the ${length} bytes it announced`)
          }
          delivered += queue.bytes
          yield queue.take()
          continue
        }
        const error = queue.error
        if (error !== undefined) {
          throw error instanceof PeerFetchError
            ? error
            : new PeerFetchError(peer, 'truncated', `stream failed after ${delivered} of ${length} bytes: ${error.message}`)
        }
        if (queue.ended || source.ended) {
          throw new PeerFetchError(peer, 'truncated', `closed the stream after ${delivered} of ${length} bytes`)
        }
        await new Promise<void>((resolve, reject) => {
          void queue.next().then(resolve)
          timer = setTimeout(() => {
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
