import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { P2pNode } from './node.js'
import { keyCid } from './content-id.js'
import { setTimeout as delay } from 'node:timers/promises'
import { Backoff } from '../clock/backoff.js'
import {
  ANNOUNCE_BATCH_PAUSE_MS,
  ANNOUNCE_CONCURRENCY,
  ANNOUNCE_MAX_DEFER_MS,
  ANNOUNCE_QUIET_MS,
  ANNOUNCE_QUIET_POLL_MS,
  ANNOUNCE_RETRY_MAX_MS,
  ANNOUNCE_RETRY_MIN_MS,
  PROVIDE_TIMEOUT_MS,
  REPROVIDE_INTERVAL_MS
} from './constants.js'
import { routingTableSize } from './routing-table.js'

export interface AnnouncerComponents {
  node: P2pNode
  log: Logger
  /** Whether this node is moving blobs now: announcements then wait (see ANNOUNCE_MAX_DEFER_MS). */
  busy?: () => boolean
}

export interface AnnounceOptions {
  /** Announce without waiting for the node to be quiet (a download in progress, which lookups should find while it runs). */
  now?: boolean
}

/**
 * Provides keys on the DHT: stored digests (everything in the store at start-up, in batches in
 * the background, and each blob as it is committed) and tag keys as tags are resolved. A provide
 * that can't run yet (empty routing table) or fails is parked and retried with backoff; the DHT
 * reprovides what succeeded, so a key announced recently is not announced again. While the node
 * moves blobs, announcements wait for a quiet moment, at most ANNOUNCE_MAX_DEFER_MS.
 */
export class Announcer {
  /** Keys to announce, in the order queued, with when each was queued (ms). */
  private readonly queue = new Map<string, number>()
  /** Queued keys that don't wait for a quiet moment. */
  private readonly urgent = new Set<string>()
  /** Since when the node has been seen quiet (not `busy`), for the keys queued now; undefined = not yet. */
  private quietSince: number | undefined
  /**
   * Parked: the routing table was empty or the query failed. Retried on a timer, not on
   * 'peer:connect': a new peer enters the routing table only after identify, so at connect time
   * the table can still be empty.
   */
  private readonly waiting = new Set<string>()
  private running: Promise<void> | undefined
  private readonly controller = new AbortController()
  private readonly announcedAt = new Map<string, number>()
  private retryTimer: NodeJS.Timeout | undefined
  private retryMs = ANNOUNCE_RETRY_MIN_MS
  private readonly backoff = new Backoff(ANNOUNCE_RETRY_MIN_MS, ANNOUNCE_RETRY_MAX_MS)

  announced = 0

  constructor (private readonly components: AnnouncerComponents) {}

  announce (key: string, opts: AnnounceOptions = {}): void {
    if (Date.now() - (this.announcedAt.get(key) ?? -Infinity) < REPROVIDE_INTERVAL_MS) return
    this.enqueue(key)
    if (opts.now === true) this.urgent.add(key)
    this.kick()
  }

  /** Queues everything in `digests` (the store at start-up) without holding the caller. */
  announceAll (keys: AsyncIterable<string>): void {
    void (async () => {
      for await (const key of keys) {
        if (this.controller.signal.aborted) return
        this.enqueue(key)
      }
      this.kick()
    })().catch((err: Error) => {
      this.components.log.warn({ err: err.message }, 'could not list the store to announce it')
    })
  }

  /** The blob left the store: stop reproviding it (peers asking get "not found" anyway). */
  forget (key: string): void {
    this.queue.delete(key)
    this.urgent.delete(key)
    this.waiting.delete(key)
    this.announcedAt.delete(key)
    void this.components.node.services.dht.cancelReprovide(keyCid(key)).catch(() => {})
    this.components.log.debug({ key }, 'withdrawn')
  }

  /**
   * Provides `keys` at once, whatever the node is doing, and resolves when each provide has
   * ended (one that failed, or found no peers, is parked and retried as usual): a replica is
   * findable before its holder says it holds it.
   */
  async provideNow (keys: string[], options: AbortOptions = {}): Promise<void> {
    if (routingTableSize(this.components.node) === 0) {
      for (const key of keys) this.park(key)
      return
    }
    const signal = options.signal === undefined ? this.controller.signal : AbortSignal.any([options.signal, this.controller.signal])
    await Promise.all(keys.map(async key => {
      this.queue.delete(key)
      this.urgent.delete(key)
      await this.provide(key, { signal })
    }))
  }

  get pending (): number {
    return this.queue.size + this.waiting.size
  }

  async stop (): Promise<void> {
    this.controller.abort()
    clearTimeout(this.retryTimer)
    await this.running
  }

  private enqueue (key: string): void {
    // A key queued into an empty queue counts quiet from now: a pull resolves its tag a moment
    // before its blobs start moving.
    if (this.queue.size === 0) this.quietSince = undefined
    if (!this.queue.has(key)) this.queue.set(key, Date.now())
  }

  /**
   * Returns once the node has been quiet (not `busy`) for ANNOUNCE_QUIET_MS, a key in the queue
   * is urgent, or the oldest one has waited ANNOUNCE_MAX_DEFER_MS.
   */
  private async quiet (options: Required<AbortOptions>): Promise<void> {
    const { signal } = options
    const busy = this.components.busy
    if (busy === undefined) return
    while (!signal.aborted && this.urgent.size === 0) {
      const now = Date.now()
      const oldest = this.queue.values().next().value
      if (oldest === undefined || now - oldest >= ANNOUNCE_MAX_DEFER_MS) return
      if (busy()) {
        this.quietSince = undefined
      } else {
        // Quiet since the last look at the earliest (batches after the first go on at once).
        this.quietSince ??= now
        if (now - this.quietSince >= ANNOUNCE_QUIET_MS) return
      }
      await delay(ANNOUNCE_QUIET_POLL_MS, undefined, { signal }).catch(() => {})
    }
  }

  /** One provide, bounded by PROVIDE_TIMEOUT_MS; a failure parks the key (backing off). */
  private async provide (key: string, options: Required<AbortOptions>): Promise<void> {
    const { node, log } = this.components
    try {
      await node.contentRouting.provide(keyCid(key), { signal: AbortSignal.any([options.signal, AbortSignal.timeout(PROVIDE_TIMEOUT_MS)]) })
      this.announced++
      this.announcedAt.set(key, Date.now())
      this.backoff.reset()
      this.retryMs = ANNOUNCE_RETRY_MIN_MS
      log.debug({ key }, 'announced')
    } catch (err) {
      if (this.controller.signal.aborted) return
      // Failing with peers present (all unreachable, timeouts): back off.
      this.retryMs = this.backoff.next()
      this.park(key)
      log.debug({ key, err: (err as Error).message, retryInMs: this.retryMs }, 'announce failed; will retry')
    }
  }

  private park (key: string): void {
    this.waiting.add(key)
    this.scheduleRetry()
  }

  private scheduleRetry (): void {
    if (this.retryTimer !== undefined || this.controller.signal.aborted || this.waiting.size === 0) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      // Still alone: look again later, without a query.
      if (routingTableSize(this.components.node) === 0) {
        this.scheduleRetry()
        return
      }
      for (const key of this.waiting) this.enqueue(key)
      this.waiting.clear()
      this.kick()
    }, this.retryMs)
    this.retryTimer.unref()
  }

  private kick (): void {
    if (this.running !== undefined || this.controller.signal.aborted) return
    this.running = this.drain().finally(() => {
      this.running = undefined
      if (this.queue.size > 0) this.kick()
    })
  }

  private async drain (): Promise<void> {
    const { node } = this.components
    const signal = this.controller.signal
    while (this.queue.size > 0 && !signal.aborted) {
      await this.quiet({ signal })
      if (signal.aborted) return
      const batch = [...new Set([...this.urgent, ...this.queue.keys()])].slice(0, ANNOUNCE_CONCURRENCY)
      for (const d of batch) {
        this.queue.delete(d)
        this.urgent.delete(d)
      }
      if (routingTableSize(node) === 0) {
        // A DHT query with no peers waits for one; park the keys until the table has some.
        for (const key of batch) this.park(key)
        continue
      }
      // A short-lived parent per batch: AbortSignal.any() on the announcer's own signal for
      // every provide would keep a reference per call for the life of the process.
      const batchStop = new AbortController()
      const onStop = (): void => {
        batchStop.abort()
      }
      signal.addEventListener('abort', onStop)
      await Promise.all(batch.map(async key => {
        await this.provide(key, { signal: batchStop.signal })
      }))
      signal.removeEventListener('abort', onStop)
      if (this.queue.size > 0) await new Promise(resolve => setTimeout(resolve, ANNOUNCE_BATCH_PAUSE_MS))
    }
  }
}
