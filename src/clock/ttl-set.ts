import { systemClock, type Clock } from './clock.js'

const SWEEP_MIN = 1024

/**
 * Keys set aside for a while (each for `durationMs` from its last `add`): peers deny-listed for
 * sending bytes that did not match their digest, peers whose data port could not be reached,
 * repositories the registry refused, bucket objects that failed their digest.
 */
export class TtlSet {
  private readonly until = new Map<string, number>()
  /** Expired entries are swept when the map reaches this size (twice the live ones after a sweep). */
  private sweepAt = SWEEP_MIN

  constructor (private readonly durationMs: number, private readonly clock: Clock = systemClock) {}

  add (key: string): void {
    this.until.set(key, this.clock.now() + this.durationMs)
    // Entries nobody asks about again (one per key for a claim list) would stay forever.
    if (this.until.size >= this.sweepAt) {
      this.list()
      this.sweepAt = Math.max(SWEEP_MIN, this.until.size * 2)
    }
  }

  has (peer: string): boolean {
    const until = this.until.get(peer)
    if (until === undefined) return false
    if (until > this.clock.now()) return true
    this.until.delete(peer)
    return false
  }

  get size (): number {
    return this.list().length
  }

  /** The peers on the list now. */
  list (): string[] {
    return [...this.until.keys()].filter(p => this.has(p))
  }
}
