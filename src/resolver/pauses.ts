/**
 * Pauses between asks of a holder: doubling from `first` up to `max` ms, each jittered by ±50%
 * so that a herd's retries spread out instead of arriving together.
 */
export class Pauses {
  constructor (private upcoming: number, private readonly max: number, private readonly random: () => number = Math.random) {}

  /** The next pause, ms. */
  next (): number {
    const pause = Math.round(this.upcoming * (0.5 + this.random()))
    this.upcoming = Math.min(this.upcoming * 2, this.max)
    return pause
  }
}
