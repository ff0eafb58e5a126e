import type { AbortOptions } from '@libp2p/interface'
import { setTimeout as delay } from 'node:timers/promises'
import { systemClock, type Clock } from '../../clock/clock.js'

/**
 * How far ahead of the rate a burst may run: over any transfer of half a second or more, what is
 * sent stays within 10% of the cap (issue 23).
 */
export const UPLOAD_BURST_MS = 50

export interface UploadRateInit {
  /** Bytes per second served to peers in all (CACHE_P2P_MAX_UPLOAD_RATE). */
  bytesPerSecond: number
  clock?: Clock
  /** Waits `ms` (tests move a FakeClock instead). */
  sleep?: (ms: number, options: Required<AbortOptions>) => Promise<void>
}

/**
 * A node-wide cap on the bytes served to peers (CACHE_P2P_MAX_UPLOAD_RATE), shared by every
 * upload over libp2p and the data channel, so a runner's own job keeps its uplink. Each chunk
 * books its time on one schedule (first come, first served), which splits the rate among the
 * uploads in progress.
 */
export class UploadRate {
  /** When the bytes booked so far may all have been sent (epoch ms). */
  private next = 0
  private readonly clock: Clock
  private readonly sleep: (ms: number, options: Required<AbortOptions>) => Promise<void>

  constructor (private readonly init: UploadRateInit) {
    if (!(init.bytesPerSecond > 0)) throw new RangeError(`upload rate must be positive, got ${init.bytesPerSecond}`)
    this.clock = init.clock ?? systemClock
    this.sleep = init.sleep ?? (async (ms, { signal }) => {
      // With the signal's own reason (why the transfer ended), not a bare AbortError.
      await delay(ms, undefined, { signal }).catch((err: unknown) => {
        throw signal.aborted ? signal.reason as Error : err
      })
    })
  }

  /**
   * Waits until `bytes` more may be sent without exceeding the rate (beyond a UPLOAD_BURST_MS
   * burst). Rejects when `options.signal` aborts (the peer left); the time booked is then not given back.
   */
  async take (bytes: number, options: Required<AbortOptions>): Promise<void> {
    const now = this.clock.now()
    this.next = Math.max(this.next, now - UPLOAD_BURST_MS) + bytes * 1000 / this.init.bytesPerSecond
    const wait = this.next - now - UPLOAD_BURST_MS
    if (wait > 0) await this.sleep(wait, options)
  }
}
