import type { Clock } from '../../../src/clock/clock.js'

/** A clock that stands still until the test moves it: expiry is tested without waiting. */
export class FakeClock implements Clock {
  constructor (private ms = Date.UTC(2026, 0, 1)) {}

  now (): number {
    return this.ms
  }

  /** Moves time forward by `ms` milliseconds. */
  advance (ms: number): void {
    this.ms += ms
  }
}
