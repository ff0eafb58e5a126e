import type { AbortOptions } from '@libp2p/interface'

/** What `start` returns: the shared value, and when the work behind it is over. */
export interface Flight<T> {
  value: T
  done: Promise<unknown>
}

/** One caller's part in a flight. `release` when the response is over (idempotent). */
export interface Share<T> {
  value: T
  /** True for the caller whose join started the flight. */
  started: boolean
  release: () => void
}

export interface SingleFlightInit {
  /**
   * After the last share leaves, the work goes on this long (ms) before it is aborted: a client
   * that reconnects (a retry, the next Range request) finds it still running.
   */
  lingerMs?: number
}

interface Entry<T> {
  flight: Flight<T>
  controller: AbortController
  shares: number
  linger: NodeJS.Timeout | undefined
  over: boolean
}

/**
 * Concurrent requests for one key share one piece of work (a download, an upstream request).
 * Each caller holds a share; a caller that leaves (its `options.signal` aborts, or it releases) stops
 * only its own part: the work is aborted once no share is left, and goes on for the others.
 * The flight leaves the map when its `done` settles, so a later join starts afresh.
 */
export class SingleFlight<K, T> {
  private readonly flights = new Map<K, Entry<T>>()
  private readonly lingerMs: number

  constructor (init: SingleFlightInit = {}) {
    this.lingerMs = init.lingerMs ?? 0
  }

  get size (): number {
    return this.flights.size
  }

  /** The values of the flights still running (not yet settled), oldest first. */
  values (): T[] {
    return [...this.flights.values()].filter(e => !e.over).map(e => e.flight.value)
  }

  /**
   * Joins the flight for `key`, starting it with `start(signal)` when there is none: `signal`
   * is the flight's own, aborted once no share is left (or at `drain`).
   */
  join (key: K, start: (signal: AbortSignal) => Flight<T>, options: AbortOptions = {}): Share<T> {
    let entry = this.live(key)
    const started = entry === undefined
    if (entry === undefined) {
      const controller = new AbortController()
      const created: Entry<T> = { flight: start(controller.signal), controller, shares: 0, linger: undefined, over: false }
      entry = created
      this.flights.set(key, created)
      // Registered before any caller awaits the value: a caller that releases right after its
      // await finds the flight over, and nothing is aborted for nothing.
      const settle = (): void => {
        created.over = true
        clearTimeout(created.linger)
        if (this.flights.get(key) === created) this.flights.delete(key)
      }
      created.flight.done.then(settle, settle)
    }
    return this.share(entry, started, options)
  }

  /** The value of the flight for `key`, without joining it. */
  peek (key: K): T | undefined {
    return this.flights.get(key)?.flight.value
  }

  /** A share of the flight for `key` if one is running; never starts one. */
  joinExisting (key: K, options: AbortOptions = {}): Share<T> | undefined {
    const entry = this.live(key)
    return entry === undefined ? undefined : this.share(entry, false, options)
  }

  /**
   * Shutdown: waits up to `graceMs` for the flights running now to end (downloads commit what
   * they fetched), aborts those still running with `reason` and gives them as long again to settle.
   */
  async drain (reason: Error, graceMs: number): Promise<void> {
    const entries = [...this.flights.values()]
    const all = Promise.allSettled(entries.map(async e => await e.flight.done))
    await Promise.race([all, new Promise(resolve => setTimeout(resolve, graceMs).unref())])
    for (const e of entries) if (!e.over) e.controller.abort(reason)
    await Promise.race([all, new Promise(resolve => setTimeout(resolve, graceMs).unref())])
  }

  /**
   * The flight for `key` unless it was aborted (every caller left, or shutdown): one that is
   * winding down must not be joined, or the caller gets its abort for an error. A new flight
   * then takes its place in the map.
   */
  private live (key: K): Entry<T> | undefined {
    const entry = this.flights.get(key)
    return entry === undefined || entry.controller.signal.aborted ? undefined : entry
  }

  private share (entry: Entry<T>, started: boolean, options: AbortOptions): Share<T> {
    const { signal } = options
    entry.shares++
    clearTimeout(entry.linger)
    entry.linger = undefined
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      signal?.removeEventListener('abort', release)
      if (--entry.shares > 0 || entry.over) return
      if (this.lingerMs === 0) {
        entry.controller.abort(new Error('every client of this request left'))
        return
      }
      entry.linger = setTimeout(() => {
        if (entry.shares === 0) entry.controller.abort(new Error('every client of this request left'))
      }, this.lingerMs)
      entry.linger.unref()
    }
    if (signal?.aborted === true) queueMicrotask(release)
    else signal?.addEventListener('abort', release, { once: true })
    return { value: entry.flight.value, started, release }
  }
}
