import type { Logger } from 'pino'

/** One started part: its name (logs, tests) and how it stops. */
interface Started {
  name: string
  stop: () => Promise<void> | void
}

/**
 * Parts that start in order and stop in reverse (js-libp2p's Startable, as a stack): each part is
 * registered as soon as it holds something (a lock, a port, a socket, a timer), so a start that
 * fails half-way, and a shutdown, stop exactly what was started, last first. A part whose stop
 * fails is logged and the rest still stop.
 */
export class Lifecycle {
  private readonly started: Started[] = []
  private stopping: Promise<void> | undefined

  /**
   * @param onStep called with each part's name once it is registered (tests inject a failure
   * at a given step by throwing from it)
   */
  constructor (private readonly log: Logger, private readonly onStep?: (name: string) => void) {}

  /** Starts a part with `start` and registers `stop` for its value. @throws what `start` or onStep throws */
  async start<T> (name: string, start: () => Promise<T> | T, stop: (value: T) => Promise<void> | void): Promise<T> {
    const value = await start()
    this.add(name, () => stop(value))
    return value
  }

  /** Registers a part already started (or a step of the shutdown: `stop` runs in reverse order). @throws what onStep throws */
  add (name: string, stop: () => Promise<void> | void): void {
    this.started.push({ name, stop })
    this.onStep?.(name)
  }

  /** The parts registered so far, in start order. */
  get names (): string[] {
    return this.started.map(s => s.name)
  }

  /** Stops every part registered, in reverse order, once (a second call waits for the first). */
  async stop (): Promise<void> {
    this.stopping ??= this.stopAll()
    await this.stopping
  }

  private async stopAll (): Promise<void> {
    for (let part = this.started.pop(); part !== undefined; part = this.started.pop()) {
      try {
        await part.stop()
      } catch (err) {
        this.log.warn({ part: part.name, err: (err as Error).message }, 'a part did not stop cleanly')
      }
    }
  }
}
