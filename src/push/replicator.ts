import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import { raceSignal } from 'race-signal'
import { setTimeout as delay } from 'node:timers/promises'
import type { Digest } from '../oci/digest.js'
import type { Stats } from '../metrics/stats.js'
import { RecentMap } from '../metrics/recent-map.js'
import { coordinatorsOf } from '../p2p/claim/distance.js'
import type { HoldAnswer, HoldKey, HoldRecord, HoldRequest } from '../p2p/hold/frames.js'
import { HOLD_MAX_KEYS, HOLD_MAX_RECORDS } from '../p2p/hold/constants.js'
import { EAGER_REPLICA_MS, HOLDERS_RETRY_MS, NO_REPLICA_WARN_MS, PLACED_COPIES_REMEMBERED, PLACED_COPY_TRUSTED_MS } from './constants.js'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/** What replication asks of the swarm (p2p/Swarm implements it; unit tests fake it). */
export interface ReplicaNetwork {
  /** Peers connected now (whether `auto` wants a replica). */
  peersConnected: () => number
  /** Connected peers that keep replicas, by peer ID. */
  holders: () => Promise<string[]>
  /** Asks `peer` to hold `request`. Rejects when it can't be asked (unreachable, gone). */
  hold: (peer: string, request: HoldRequest, options: Required<AbortOptions>) => Promise<HoldAnswer>
}

export interface ReplicatorInit {
  /** Undefined without P2P: nothing is replicated. */
  network?: ReplicaNetwork | undefined
  /** CACHE_LOCAL_REPLICAS; undefined = auto (1 with peers, 0 alone). */
  replicas: number | undefined
  /** CACHE_LOCAL_REPLICA_TIMEOUT (ms). */
  timeoutMs: number
  /** CACHE_LOCAL_TTL (ms): how long holders keep a replica against eviction. */
  ttlMs: number
  stats: Pick<Stats, 'inc'>
  log: Logger
  now?: () => number
}

/** No replica could be placed in time: the push is not acknowledged (503). */
export class ReplicaPlacementError extends P2pCacheError {
  constructor (message: string) {
    super(message, { httpStatus: 503 })
  }
}

interface Copy {
  held: Promise<boolean>
  at: number
}

/**
 * The pusher's side of replication (issue 25, point 3): a push to the local namespace is
 * acknowledged only once CACHE_LOCAL_REPLICAS other nodes hold its blobs, manifest and tag, so
 * an ephemeral runner can be destroyed right after its build job. Holders are the connected
 * peers closest (XOR) to the repository's name, so one push — and the next pushes to the same
 * repository — land whole on the same nodes. Each uploaded blob starts toward them at once
 * (`prefetch`); the manifest PUT (`place`) waits for what is still on its way.
 */
export class Replicator {
  /** `<peer> <digest>` → whether that peer said it holds it (in flight, or settled). */
  private readonly copies = new RecentMap<Copy>(PLACED_COPIES_REMEMBERED)
  private warnedAloneAt = -Infinity

  constructor (private readonly init: ReplicatorInit) {}

  /**
   * Starts `key` (just uploaded to `repository`) toward the holders a push to it will want;
   * returns at once. A failure here is only logged: `place` tries again.
   */
  prefetch (repository: string, key: HoldKey): void {
    void (async () => {
      const want = this.wanted()
      const network = this.init.network
      if (want === 0 || network === undefined) return
      const signal = AbortSignal.timeout(EAGER_REPLICA_MS)
      const peers = coordinatorsOf(repository, await network.holders()).slice(0, want)
      await Promise.all(peers.map(async peer => await this.holdOn(peer, [key], { signal })))
    })().catch((err: Error) => {
      this.init.log.debug({ digest: key.digest, err: err.message }, 'early replica not placed; the manifest PUT tries again')
    })
  }

  /**
   * Places `keys` and `records` (a push to `repository`) on the wanted number of other nodes, or
   * throws. With fewer holders connected than wanted, it looks for more until the deadline. The
   * records follow once every holder has the keys.
   * @returns the peers that hold them (none when no replica is wanted)
   * @throws ReplicaPlacementError past CACHE_LOCAL_REPLICA_TIMEOUT
   */
  async place (
    repository: string,
    keys: HoldKey[],
    records: HoldRecord[],
    options: AbortOptions & { timeoutMs?: number } = {}
  ): Promise<string[]> {
    const want = this.wanted()
    const network = this.init.network
    if (want === 0 || network === undefined) {
      this.warnAlone(repository)
      return []
    }
    const timeoutMs = options.timeoutMs ?? this.init.timeoutMs
    const deadline = AbortSignal.timeout(timeoutMs)
    const signal = options.signal === undefined ? deadline : AbortSignal.any([deadline, options.signal])
    const placed: string[] = []
    const failures = new Map<string, string>()
    while (placed.length < want) {
      const candidates = coordinatorsOf(repository, (await network.holders()).filter(p => !placed.includes(p)))
      // As many at once as are still wanted; the next closest replaces one that fails.
      const lanes = Array.from({ length: Math.min(want - placed.length, candidates.length) }, async () => {
        for (let peer = candidates.shift(); peer !== undefined && placed.length < want; peer = candidates.shift()) {
          try {
            await this.holdOn(peer, keys, { signal })
            placed.push(peer)
            failures.delete(peer)
            return
          } catch (err) {
            if (options.signal?.aborted === true) throw err
            failures.set(peer, (err as Error).message)
            if (signal.aborted) return
          }
        }
      })
      await Promise.all(lanes)
      if (placed.length >= want || signal.aborted) break
      await delay(HOLDERS_RETRY_MS, undefined, { signal }).catch(() => {})
      if (signal.aborted) break
    }
    // Records (the tag) only once the content is where it must be: a push that fails leaves
    // no tag anywhere that resolves to it.
    if (placed.length >= want && records.length > 0) {
      try {
        await Promise.all(placed.map(async peer => {
          await this.holdRecords(peer, records, { signal })
        }))
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        throw new ReplicaPlacementError(`the tag could not be placed with the content: ${(err as Error).message.slice(0, 600)}`)
      }
    }
    if (placed.length < want) {
      const why = failures.size === 0
        ? `${network.peersConnected()} peers connected, ${placed.length} of them took it`
        : [...failures].slice(0, 3).map(([p, m]) => `${p}: ${m}`).join('; ')
      throw new ReplicaPlacementError(
        `${placed.length} of ${want} replicas placed within ${Math.round(timeoutMs / 1000)} s (${why.slice(0, 600)})`
      )
    }
    return placed
  }

  /** Replicas wanted now: CACHE_LOCAL_REPLICAS, or (auto) 1 with peers and 0 alone. */
  wanted (): number {
    if (this.init.network === undefined) return 0
    return this.init.replicas ?? (this.init.network.peersConnected() > 0 ? 1 : 0)
  }

  /**
   * Makes `peer` hold every key: what it already said it holds is not sent again, what is on its
   * way is waited for, the rest is asked in requests of at most HOLD_MAX_KEYS.
   * @throws Error naming the peer's answer, or the signal's reason
   */
  private async holdOn (peer: string, keys: HoldKey[], options: Required<AbortOptions>): Promise<void> {
    const { signal } = options
    const now = (this.init.now ?? Date.now)()
    const waiting: Array<{ key: HoldKey, held: Promise<boolean> }> = []
    const missing: HoldKey[] = []
    for (const key of keys) {
      const copy = this.copies.get(`${peer} ${key.digest}`)
      if (copy !== undefined && now - copy.at < PLACED_COPY_TRUSTED_MS) waiting.push({ key, held: copy.held })
      else missing.push(key)
    }
    // A copy on its way that did not arrive is asked for again, once, by this call.
    const settled = await raceSignal(Promise.all(waiting.map(w => w.held)), signal)
    waiting.forEach((w, i) => {
      if (settled[i] === false) missing.push(w.key)
    })
    for (let i = 0; i < missing.length; i += HOLD_MAX_KEYS) await this.ask(peer, missing.slice(i, i + HOLD_MAX_KEYS), [], options)
  }

  /** Makes `peer` keep `records`, in requests of at most HOLD_MAX_RECORDS. @throws as holdOn */
  private async holdRecords (peer: string, records: HoldRecord[], options: Required<AbortOptions>): Promise<void> {
    for (let i = 0; i < records.length; i += HOLD_MAX_RECORDS) await this.ask(peer, [], records.slice(i, i + HOLD_MAX_RECORDS), options)
  }

  /** One hold request; its keys are remembered as placed on `peer` when it answers `held`. */
  private async ask (peer: string, keys: HoldKey[], records: HoldRecord[], options: Required<AbortOptions>): Promise<void> {
    const network = this.init.network
    if (network === undefined) return
    const now = (this.init.now ?? Date.now)()
    const request: HoldRequest = { keys, keepUntil: now + this.init.ttlMs, ...(records.length > 0 ? { records } : {}) }
    const answer = network.hold(peer, request, options).then(a => {
      if (a.status !== 'held') throw new Error(`${a.status}: ${a.message}`)
    })
    const held = answer.then(() => true, () => false)
    for (const key of keys) {
      this.copies.delete(`${peer} ${key.digest}`)
      this.copies.touch(`${peer} ${key.digest}`, () => ({ held, at: now }))
    }
    // Forgotten when it failed: the next push asks again.
    void held.then(ok => {
      if (!ok) { for (const key of keys) this.forgetIf(peer, key.digest, held) }
    })
    await answer
    this.init.stats.inc('replicas_placed', keys.length)
  }

  private forgetIf (peer: string, digest: Digest, held: Promise<boolean>): void {
    if (this.copies.get(`${peer} ${digest}`)?.held === held) this.copies.delete(`${peer} ${digest}`)
  }

  private warnAlone (repository: string): void {
    const now = (this.init.now ?? Date.now)()
    if (this.init.replicas === 0 || now - this.warnedAloneAt < NO_REPLICA_WARN_MS) return
    this.warnedAloneAt = now
    this.init.log.warn(
      { repository },
      'a push to the local namespace lives on this node only (no peers connected): it is lost with this runner. Bootstrap the runners to each other (CACHE_BOOTSTRAP_PEERS), or set CACHE_LOCAL_REPLICAS=0 to say this is meant'
    )
  }
}
