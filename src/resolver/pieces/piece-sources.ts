import type { PeerRef } from '../../p2p/fetch/client.js'
import { IN_PROGRESS_IDLE_MS } from '../../p2p/constants.js'
import { Backoff } from '../../clock/backoff.js'
import {
  HOLDER_BUSY_FIRST_MS,
  HOLDER_BUSY_MAX_MS,
  MAX_SOURCE_FAILURES,
  NAMED_HOLDER_LANES,
  PROBE_INTERVAL_MAX_MS,
  PROBE_INTERVAL_MS
} from './constants.js'

/** One holder of a blob, as a receiver of its pieces sees it. */
export interface PieceSource {
  readonly ref: PeerRef
  readonly name: string
  /** The holder the coordinator named (it follows its own download when asked past what it has). */
  readonly named: boolean
  /** The holder fetching the blob from the upstream (the hash source), when it is not the named one. */
  readonly seeder: boolean
  /** Bytes [0, have) it holds verified, as it last said (undefined: not known yet). */
  have: number | undefined
  /** Transfers this receiver runs with it now. */
  lanes: number
  /** Not asked before this time (ms, the clock of `now`): it answered busy. */
  coolUntil: number
  /** It failed (dead, stalled, lied): not asked again for this blob. */
  gone: boolean
  /** When its progress was last asked for (a probe), ms. */
  probedAt: number
  /** How often its progress may be asked for, ms: doubles while its answers show nothing this receiver lacks. */
  probeEvery: number
  /** Stalled or dropped transfers in a row (see `faltered`). */
  failures: number
  /** When it last got further (`have` grew), or was first asked; ms. */
  progressAt: number
  pauses: Backoff
}

export interface PieceSourcesInit {
  /** A peer set aside for lying (the swarm's deny list). */
  isDenied: (peer: string) => boolean
  now?: () => number
  random?: () => number
  namedLanes?: number
  busyFirstMs?: number
  busyMaxMs?: number
  probeIntervalMs?: number
  /** The longest a holder's probes back off to (PROBE_INTERVAL_MAX_MS). */
  probeIntervalMaxMs?: number
  /** A holder busy with no progress this long is dropped (IN_PROGRESS_IDLE_MS). */
  stallMs?: number
}

/** What to ask a source for: pieces from the offset given to `pick`, up to `maxPieces` of them. */
export interface PieceChoice {
  source: PieceSource
  maxPieces: number
}

/**
 * The holders a receiver may take a blob's pieces from (issue 23): the one the coordinator named,
 * and the others it listed (receivers still in progress, holders with a stored copy, the seeder).
 * Decides who is asked for the next run of pieces:
 *  1. the named holder, up to NAMED_HOLDER_LANES transfers (it follows its own download: the
 *     chain the coordinator built);
 *  2. else a holder known to have the run's first piece whole, with no transfer to this receiver
 *     yet, the one that has the least first (the most advanced holders are the ones everybody
 *     else wants), the seeder only when the named holder is gone and nobody else has it (its
 *     uplink feeds the chain);
 *  3. else nobody for now.
 * A busy holder cools off (doubling pauses); a failed one is gone for this blob. So a saturated or
 * slow holder loses its share of the requests to the others.
 */
export class PieceSources {
  private readonly sources: PieceSource[] = []
  private readonly now: () => number
  private readonly random: () => number
  private readonly namedLanes: number
  private readonly busyFirstMs: number
  private readonly busyMaxMs: number
  private readonly probeIntervalMs: number
  private readonly probeIntervalMaxMs: number
  private readonly stallMs: number

  /** `seeder`: the peer ID of the holder fetching it from the upstream, when it is among `others`. */
  constructor (named: PeerRef, others: PeerRef[], private readonly init: PieceSourcesInit, seeder?: string) {
    this.now = init.now ?? Date.now
    this.random = init.random ?? Math.random
    this.namedLanes = init.namedLanes ?? NAMED_HOLDER_LANES
    this.busyFirstMs = init.busyFirstMs ?? HOLDER_BUSY_FIRST_MS
    this.busyMaxMs = init.busyMaxMs ?? HOLDER_BUSY_MAX_MS
    this.probeIntervalMs = init.probeIntervalMs ?? PROBE_INTERVAL_MS
    this.probeIntervalMaxMs = Math.max(this.probeIntervalMs, init.probeIntervalMaxMs ?? PROBE_INTERVAL_MAX_MS)
    this.stallMs = init.stallMs ?? IN_PROGRESS_IDLE_MS
    this.add(named, true, false)
    for (const o of others) this.add(o, false, o.id.toString() === seeder)
  }

  get all (): readonly PieceSource[] {
    return this.sources
  }

  /** The named holder (first). */
  get named (): PieceSource {
    return this.sources[0] as PieceSource
  }

  /** Some holder may still be asked (now or after a pause). */
  get usable (): boolean {
    return this.sources.some(s => this.live(s))
  }

  /**
   * Who to ask for pieces from byte `offset` (the start of a piece of `pieceSize` bytes in a blob
   * of `size`); undefined when nobody can be asked now.
   */
  pick (offset: number, pieceSize: number, size: number): PieceChoice | undefined {
    const now = this.now()
    const named = this.named
    if (this.ready(named, now) && named.lanes < this.namedLanes) return { source: named, maxPieces: Infinity }
    const pieceEnd = Math.min(size, offset + pieceSize)
    let best: PieceSource | undefined
    let tie = 0
    // The seeder's uplink feeds the chain: it serves others' runs only when the named holder is gone.
    const seederToo = !this.live(named)
    for (const s of this.sources) {
      if (!this.ready(s, now) || s.lanes >= 1 || s.have === undefined || s.have < pieceEnd || (s.seeder && !seederToo)) continue
      // Even then, only when nobody else can.
      if (best !== undefined && s.seeder !== best.seeder) {
        if (s.seeder) continue
        best = s
        tie = 1
        continue
      }
      if (best === undefined || s.have < (best.have ?? 0)) {
        best = s
        tie = 1
      } else if (s.have === best.have && this.random() < 1 / ++tie) {
        best = s
      }
    }
    if (best === undefined) return undefined
    const have = best.have ?? 0
    const whole = have >= size ? Infinity : Math.floor((have - offset) / pieceSize)
    return { source: best, maxPieces: Math.max(1, whole) }
  }

  /**
   * A holder other than the named one whose progress is unknown or was asked for longest ago, not
   * more often than its `probeEvery` (PROBE_INTERVAL_MS, backing off: see `probed`); undefined
   * when none is due. A holder known to hold all `size` bytes is not asked: it has nothing left to say.
   */
  probeCandidate (size = Infinity): PieceSource | undefined {
    const now = this.now()
    let due: PieceSource | undefined
    for (const s of this.sources) {
      // The seeder's progress comes with its hashes, and it is not asked for runs while the named holder lives.
      if (
        s.named || (s.seeder && this.live(this.named)) || !this.ready(s, now) || s.lanes > 0 || now - s.probedAt < s.probeEvery ||
        (s.have ?? 0) >= size
      ) continue
      if (due === undefined || s.probedAt < due.probedAt) due = s
    }
    if (due !== undefined) due.probedAt = now
    return due
  }

  /** The holder served (or said it holds) bytes up to `end`. */
  served (s: PieceSource, end: number): void {
    if (end > (s.have ?? 0)) s.progressAt = this.now()
    s.have = Math.max(s.have ?? 0, end)
    s.failures = 0
    s.pauses = new Backoff(this.busyFirstMs, this.busyMaxMs, this.random)
  }

  /**
   * A probe of the holder was answered (after `served` or `busy` took its `have`): `useful` when
   * it holds a piece this receiver still lacks. Its next probe waits PROBE_INTERVAL_MS after a
   * useful answer, and twice as long as the last wait (up to PROBE_INTERVAL_MAX_MS) after one
   * that was not: in a herd every receiver is about as far as the others, most probes find
   * nothing, and each costs both nodes a stream (issue 23).
   */
  probed (s: PieceSource, useful: boolean): void {
    s.probeEvery = useful ? this.probeIntervalMs : Math.min(this.probeIntervalMaxMs, s.probeEvery * 2)
  }

  /**
   * The holder answered busy (`have`: what it said it holds): asked again after a pause. One that
   * has got no further for `stallMs` (a receiver whose own sources are gone) is gone.
   */
  busy (s: PieceSource, have?: number): void {
    if (have !== undefined && have > (s.have ?? 0)) {
      s.have = have
      s.progressAt = this.now()
    }
    if (this.now() - s.progressAt > this.stallMs) s.gone = true
    s.coolUntil = this.now() + s.pauses.next()
  }

  /** The holder failed for good (dead, refused, lied): not asked again for this blob. */
  failed (s: PieceSource): void {
    s.gone = true
  }

  /**
   * The holder went quiet or dropped a transfer (stalled, truncated): a holder that is receiving
   * the blob itself stalls while its own source does, so it cools off like a busy one; after
   * MAX_SOURCE_FAILURES such failures in a row it is gone.
   */
  faltered (s: PieceSource): void {
    if (++s.failures >= MAX_SOURCE_FAILURES) s.gone = true
    else this.busy(s)
  }

  /** When the next cooling holder may be asked again (ms, the clock of `now`); undefined when none cools. */
  nextReady (): number | undefined {
    let at: number | undefined
    for (const s of this.sources) if (this.live(s) && s.coolUntil > this.now() && (at === undefined || s.coolUntil < at)) at = s.coolUntil
    return at
  }

  private add (ref: PeerRef, named: boolean, seeder: boolean): void {
    const name = ref.id.toString()
    if (this.sources.some(s => s.name === name)) return
    this.sources.push({
      ref,
      name,
      named,
      seeder,
      have: undefined,
      lanes: 0,
      coolUntil: 0,
      gone: false,
      probedAt: -Infinity,
      probeEvery: this.probeIntervalMs,
      failures: 0,
      progressAt: this.now(),
      pauses: new Backoff(this.busyFirstMs, this.busyMaxMs, this.random)
    })
  }

  private live (s: PieceSource): boolean {
    return !s.gone && !this.init.isDenied(s.name)
  }

  private ready (s: PieceSource, now: number): boolean {
    return this.live(s) && s.coolUntil <= now
  }
}
