import type { CounterName } from '../metrics/stats.js'
import { HISTORY_INTERVAL_MS, HISTORY_POINTS } from './constants.js'

/** Where requests were answered during one interval. */
export interface HistoryPoint {
  /** End of the interval, ms since the epoch. */
  at: number
  local: number
  peer: number
  s3: number
  upstream: number
  stale: number
}

/** The counters a point is the difference of, by source. */
const SOURCES = {
  local: 'hits',
  peer: 'peer_hits',
  s3: 's3_hits',
  upstream: 'upstream_hits',
  stale: 'stale_tags_served'
} as const satisfies Record<string, CounterName>

type Source = keyof typeof SOURCES

/**
 * The requests answered by each source per HISTORY_INTERVAL_MS over the last hour: the status
 * page's hit ratio over time. A timer copies five counters each interval (unref'd, so it never
 * keeps the process up); nothing else runs while nobody looks.
 */
export class HitHistory {
  private readonly points: HistoryPoint[] = []
  private last: Record<Source, number> | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly counters: () => Readonly<Record<CounterName, number>>, private readonly now: () => number = Date.now) {}

  start (): void {
    this.sample()
    this.timer = setInterval(() => {
      this.sample()
    }, HISTORY_INTERVAL_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Closes the current interval: one point of what each source answered since the last. */
  sample (): void {
    const values = this.counters()
    const current = Object.fromEntries(Object.entries(SOURCES).map(([source, counter]) => [source, values[counter]])) as Record<
      Source,
      number
    >
    const last = this.last
    this.last = current
    if (last === undefined) return
    const point: HistoryPoint = { at: this.now(), local: 0, peer: 0, s3: 0, upstream: 0, stale: 0 }
    for (const source of Object.keys(SOURCES) as Source[]) point[source] = Math.max(0, current[source] - last[source])
    this.points.push(point)
    if (this.points.length > HISTORY_POINTS) this.points.shift()
  }

  list (): HistoryPoint[] {
    return [...this.points]
  }
}
