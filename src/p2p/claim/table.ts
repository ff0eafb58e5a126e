import type { Digest } from '../../oci/digest.js'
import type { ClaimAnswer, ClaimRequest } from './frames.js'
import { CLAIM_DONE_TTL_MS, CLAIM_LEASE_MS, CLAIM_TABLE_MAX } from './constants.js'

/** A peer that has (or is fetching) a key, as a provider record or a claim names it. */
export interface Holder {
  peer: string
  addrs: string[]
}

interface Entry extends Holder {
  /** Lease end (fetching) or record end (committed), epoch ms. */
  until: number
  committed: boolean
  /** Joins answered for this committed entry: turns among the holders (see `decide`). */
  joins?: number
}

export interface ClaimTableInit {
  leaseMs?: number
  doneTtlMs?: number
  maxEntries?: number
  now?: () => number
}

/**
 * The coordinator's view of who fetches which key (one entry per key). It never goes upstream
 * itself: it only says who does, so SPEC 3.4's "no fetch-through for peers" holds.
 *
 * Decisions, for a claim from `from`:
 *  - a live entry held by another peer that `from` did not report failed → `join` it; once the
 *    entry is committed, joins take turns among it and the provider records (peers that stored
 *    the key since), so a herd's later readers don't all queue at the first holder's uploads;
 *  - otherwise a provider record (another peer that stored it) → `join` it;
 *  - otherwise `from` gets the lease → `fetch`.
 * A joiner's report that a *fetching* holder failed does not hand its lease over: on a loaded
 * machine a live holder misses a joiner's dial or idle timeouts long before it misses its
 * renewals, and a takeover costs the upstream a second copy (issue 23). Its lease goes when it
 * stops renewing (it died, or its upstream stalled) or when its connection to the coordinator
 * closes (`dropHolder`). A report against a holder with a committed copy stands: it is skipped.
 */
export class ClaimTable {
  private readonly entries = new Map<Digest, Entry>()
  private readonly leaseMs: number
  private readonly doneTtlMs: number
  private readonly maxEntries: number
  private readonly now: () => number

  constructor (init: ClaimTableInit = {}) {
    this.leaseMs = init.leaseMs ?? CLAIM_LEASE_MS
    this.doneTtlMs = init.doneTtlMs ?? CLAIM_DONE_TTL_MS
    this.maxEntries = init.maxEntries ?? CLAIM_TABLE_MAX
    this.now = init.now ?? Date.now
  }

  get size (): number {
    return this.entries.size
  }

  /**
   * Applies `request` from `from` (whose dialable addresses are `addrs`). `providers` are the
   * provider records this node holds for the key, consulted only when no claim decides.
   */
  decide (from: Holder, request: ClaimRequest, providers: Holder[]): ClaimAnswer {
    const { key, op } = request
    const failed = new Set(request.failed ?? [])
    const now = this.now()
    let entry = this.entries.get(key)
    const reportedFailed = entry !== undefined && entry.committed && failed.has(entry.peer) && entry.peer !== from.peer
    if (entry !== undefined && (entry.until <= now || reportedFailed)) {
      this.entries.delete(key)
      entry = undefined
    }
    switch (op) {
      case 'release':
        if (entry?.peer === from.peer && !entry.committed) this.entries.delete(key)
        return { status: 'ok' }
      case 'done':
        this.set(key, { ...from, until: now + this.doneTtlMs, committed: true })
        return { status: 'ok' }
      case 'claim':
      case 'renew': {
        if (entry !== undefined && entry.peer !== from.peer) {
          const holder = entry.committed && op === 'claim' ? this.inTurn(entry, from, failed, providers) : entry
          return { status: 'join', peer: holder.peer, addrs: holder.addrs, committed: entry.committed }
        }
        if (op === 'claim' && entry?.peer !== from.peer) {
          const provider = providers.find(p => p.peer !== from.peer && !failed.has(p.peer))
          if (provider !== undefined) return { status: 'join', peer: provider.peer, addrs: provider.addrs, committed: true }
        }
        this.set(key, { ...from, until: now + this.leaseMs, committed: false })
        return { status: 'fetch', leaseMs: this.leaseMs }
      }
    }
  }

  /**
   * `peer` left (its connection to the coordinator closed): the leases it held end now, so the
   * next claim fetches; its committed copies stay named until a joiner reports them failed.
   * Returns how many leases ended.
   */
  dropHolder (peer: string): number {
    let dropped = 0
    for (const [key, entry] of this.entries) {
      if (entry.peer === peer && !entry.committed) {
        this.entries.delete(key)
        dropped++
      }
    }
    return dropped
  }

  /** The committed entry's holder or one of the other holders that stored the key, in turn. */
  private inTurn (entry: Entry, from: Holder, failed: Set<string>, providers: Holder[]): Holder {
    const holders: Holder[] = [entry]
    for (const p of providers) {
      if (p.peer !== from.peer && !failed.has(p.peer) && !holders.some(h => h.peer === p.peer)) holders.push(p)
    }
    const turn = entry.joins ?? 0
    entry.joins = turn + 1
    return holders[turn % holders.length] ?? entry
  }

  private set (key: Digest, entry: Entry): void {
    this.entries.delete(key)
    this.entries.set(key, entry)
    if (this.entries.size <= this.maxEntries) return
    // Oldest first: a Map iterates in insertion order, and `set` re-inserts.
    for (const k of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break
      this.entries.delete(k)
    }
  }
}
