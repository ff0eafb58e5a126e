import { systemClock, type Clock } from '../clock/clock.js'
import { DENY_MS } from './constants.js'

/**
 * Peers set aside for a while: ones that sent bytes that did not match the digest they were asked
 * for, or (a list of its own) ones whose data channel port could not be reached.
 */
export class DenyList {
  private readonly until = new Map<string, number>()

  constructor (private readonly durationMs = DENY_MS, private readonly clock: Clock = systemClock) {}

  add (peer: string): void {
    this.until.set(peer, this.clock.now() + this.durationMs)
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
