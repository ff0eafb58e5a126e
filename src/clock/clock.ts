/**
 * Wall-clock time, injected where expiry matters (deny-lists, leases, record ages, cache
 * freshness) so that unit tests move time forward instead of waiting for it.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch, like `Date.now()`. */
  now: () => number
}

/** The process's own clock (`Date.now`). */
export const systemClock: Clock = { now: () => Date.now() }
