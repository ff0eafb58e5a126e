import type { Logger } from 'pino'
import type { Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import type { BlobCatalog } from './catalog.js'
import { planEviction, planRoom, type EvictionCandidate, type EvictionPolicy } from './eviction.js'
import type { Leases } from './leases.js'
import type { SpaceAccount } from './space-account.js'

export interface EvictorInit {
  policy: EvictionPolicy
  catalog: Pick<BlobCatalog, 'entries' | 'delete'>
  /** Blobs being read or written: never removed here. */
  leases: Pick<Leases, 'held'>
  /** The size the policy bounds. */
  space: Pick<SpaceAccount, 'size'>
  /** Access ages (minAge) and keep-until times are measured on it. */
  clock: Clock
  log: Logger
  onEvict?: ((digest: Digest, size: number) => void) | undefined
}

/**
 * Takes blobs out of the store that nobody is using: the eviction policy (docs/design.md §3.5, planned by
 * `planEviction`), room on a full filesystem (`planRoom`), and clearing the cache. This is the
 * glue between those plans and the catalog: the plans are pure, the removals happen here.
 */
export class Evictor {
  private evicting: Promise<number> | undefined

  constructor (private readonly init: EvictorInit) {}

  /**
   * Applies the eviction policy (docs/design.md §3.5); `force` prunes to the low watermark even when the
   * store is below the high one (`p2p-cache gc`). One eviction runs at a time: a call during
   * one gets its result. Returns the number of blobs removed.
   */
  async evict (force = false): Promise<number> {
    if (this.evicting !== undefined) return await this.evicting
    this.evicting = this.runEviction(force).finally(() => {
      this.evicting = undefined
    })
    return await this.evicting
  }

  /** Starts an eviction in the background when the store is past its high watermark (after a commit). */
  evictIfOver (): void {
    const { policy, space } = this.init
    if (space.size > policy.maxSize * policy.highWatermark) void this.evict().catch(() => {})
  }

  /**
   * The filesystem is full: removes least recently used blobs that are not pinned or in use,
   * whatever their age, until `bytes` are freed or none is left (CACHE_MAX_SIZE larger than the
   * filesystem, or other files on it). Returns the bytes freed.
   */
  async makeRoom (bytes: number): Promise<number> {
    const removed = await this.removeVictims(planRoom(await this.candidates(), bytes, d => this.init.leases.held(d), this.init.clock.now()))
    const freed = removed.reduce((n, { record }) => n + record.size, 0)
    if (freed > 0) {
      this.init.log.warn(
        { freed, wanted: bytes, size: this.init.space.size },
        'store filesystem full; evicted least recently used blobs to make room'
      )
    }
    return freed
  }

  /** Removes every blob that is not in use (DELETE /api/cache); not counted as evictions. Returns the number removed. */
  async clear (): Promise<number> {
    let removed = 0
    for await (const [digest] of this.init.catalog.entries()) {
      if (this.init.leases.held(digest)) continue
      if (await this.init.catalog.delete(digest)) removed++
    }
    return removed
  }

  /** Resolves once no eviction is running (before the index closes); never rejects. */
  async settled (): Promise<void> {
    await this.evicting?.catch(() => {})
  }

  private async runEviction (force: boolean): Promise<number> {
    const { policy, space, log } = this.init
    const plan = planEviction(await this.candidates(), space.size, policy, this.init.clock.now(), d => this.init.leases.held(d), force)
    if (plan.overrodeMinAge) {
      log.warn(
        { size: space.size, maxSize: policy.maxSize },
        'store is over CACHE_MAX_SIZE with only recently used blobs; evicting some of them — raise CACHE_MAX_SIZE if this repeats'
      )
    }
    const removed = await this.removeVictims(plan.victims)
    for (const { digest, record } of removed) log.info({ digest, size: record.size }, 'evicted')
    return removed.length
  }

  /** Every indexed blob with its record: what eviction chooses from. */
  private async candidates (): Promise<EvictionCandidate[]> {
    const candidates: EvictionCandidate[] = []
    for await (const [digest, record] of this.init.catalog.entries()) candidates.push({ digest, record })
    return candidates
  }

  /** Deletes the `victims` still not in use (each counted as an eviction); returns those removed. */
  private async removeVictims (victims: EvictionCandidate[]): Promise<EvictionCandidate[]> {
    const removed: EvictionCandidate[] = []
    for (const victim of victims) {
      if (this.init.leases.held(victim.digest) || !await this.init.catalog.delete(victim.digest)) continue
      removed.push(victim)
      this.init.onEvict?.(victim.digest, victim.record.size)
    }
    return removed
  }
}
