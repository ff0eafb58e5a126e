/**
 * The one retry pause of the code base: doubling from `first` up to `max` ms, each pause jittered
 * by ±50% so that a fleet's retries (a herd asking a busy holder, runners redialling a bootstrap
 * peer that restarted, uploads to a bucket that came back) spread out instead of arriving together.
 */
export class Backoff {
  private upcoming: number

  constructor (private readonly first: number, private readonly max: number, private readonly random: () => number = Math.random) {
    this.upcoming = first
  }

  /** The next pause in ms (jittered), and the one after it doubles. */
  next (): number {
    const pause = Math.round(this.upcoming * (0.5 + this.random()))
    this.upcoming = Math.min(this.upcoming * 2, this.max)
    return pause
  }

  /** After a success: the next pause is `first` again. */
  reset (): void {
    this.upcoming = this.first
  }
}
