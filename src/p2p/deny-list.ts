import { systemClock, type Clock } from '../clock/clock.js'
import { DENY_MS } from './constants.js'

const SWEEP_MIN = 1024

/**
 * Peers set aside for a while: ones that sent bytes that did not match the digest they were asked
 * for, or (a list of its own) ones whose data channel port could not be reached.
 */
export class DenyList {
  private readonly until = new Map<string, number>()
  /** Expired entries are swept when the map reaches this size (twice the live ones after a sweep). */
  private sweepAt = SWEEP_MIN

  constructor (private readonly durationMs = DENY_MS, private readonly clock: Clock = systemClock) {}

  add (peer: string): void {
    this.until.set(peer, this.clock.now() + this.durationMs)
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
