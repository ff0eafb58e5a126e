import type { Digest } from '../../oci/digest.js'
import type { ClaimAnswer, ClaimRequest } from './frames.js'
import {
  CLAIM_CHAIN_FANOUT,
  CLAIM_DONE_TTL_MS,
  CLAIM_LAST_HOLDER_REPORTS,
  CLAIM_LEASE_MS,
  CLAIM_MEMBERS_MAX,
  CLAIM_OTHERS_MAX,
  CLAIM_TABLE_MAX
} from './constants.js'

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
  /** Joins named this holder to, while it was fetching (see CLAIM_CHAIN_FANOUT). */
  followers?: number
  /** Peers that joined the key, oldest first: receivers that serve the pieces they hold. */
  members?: Member[]
  /** The committed holder was reported failed: joins go to the other holders and the members. */
  reported?: boolean
  /** Reports against the committed holder while it was the last one (see CLAIM_LAST_HOLDER_REPORTS). */
  lastHolderReports?: number
}

interface Member extends Holder {
  /** Joins named this member to. */
  followers: number
}

export interface ClaimTableInit {
  leaseMs?: number
  /** Followers per holder still receiving (CLAIM_CHAIN_FANOUT). */
  chainFanout?: number
  doneTtlMs?: number
  maxEntries?: number
  now?: () => number
}

/**
 * The coordinator's view of who fetches which key (one entry per key). It never goes upstream
 * itself: it only says who does, so docs/design.md §3.4's "no fetch-through for peers" holds.
 *
 * Decisions, for a claim from `from`:
 *  - a live entry held by another peer that `from` did not report failed → `join` it; once the
 *    entry is committed, joins take turns among it and the provider records (peers that stored
 *    the key since), so a herd's later readers don't all queue at the first holder's uploads;
 *  - otherwise a provider record (another peer that stored it) → `join` it;
 *  - otherwise `from` gets the lease → `fetch`.
 * While the key is being fetched, joins are named in a chain (CLAIM_CHAIN_FANOUT): the holder
 * first, then each receiver that takes it in pieces (`pieces`: it serves the pieces it holds) in
 * the order they joined, so no uplink is shared by the whole herd; every join answer also lists
 * the `others` (receivers, holders, provider records) for pieces.
 * A joiner's report that a *fetching* holder failed does not hand its lease over: on a loaded
 * machine a live holder misses a joiner's dial or idle timeouts long before it misses its
 * renewals, and a takeover costs the upstream a second copy (issue 23). Its lease goes when it
 * stops renewing (it died, or its upstream stalled) or when its connection to the coordinator
 * closes (`dropHolder`). A report against a holder with a committed copy stands: it is skipped,
 * and joins go to the peers that stored it since and to the receivers (members), which hold its
 * pieces (a receiver is named only receivers that joined before it: a later one may be reading
 * from it). When none is left for the reporter, the holder is named again: while the
 * coordinator is connected to it (alive, only loaded), always; else once more
 * (CLAIM_LAST_HOLDER_REPORTS), and only then does the reporter fetch.
 */
export class ClaimTable {
  private readonly entries = new Map<Digest, Entry>()
  private readonly leaseMs: number
  private readonly doneTtlMs: number
  private readonly maxEntries: number
  private readonly chainFanout: number
  private readonly now: () => number

  constructor (init: ClaimTableInit = {}) {
    this.leaseMs = init.leaseMs ?? CLAIM_LEASE_MS
    this.doneTtlMs = init.doneTtlMs ?? CLAIM_DONE_TTL_MS
    this.maxEntries = init.maxEntries ?? CLAIM_TABLE_MAX
    this.chainFanout = init.chainFanout ?? CLAIM_CHAIN_FANOUT
    this.now = init.now ?? Date.now
  }

  get size (): number {
    return this.entries.size
  }

  /** What the table holds for `key` (for logs): the holder, whether committed, ms left, receivers, whether reported. */
  describe (key: Digest): { peer: string, committed: boolean, leftMs: number, members: number, reported: boolean } | undefined {
    const e = this.entries.get(key)
    return e === undefined
      ? undefined
      : {
        peer: e.peer,
        committed: e.committed,
        leftMs: e.until - this.now(),
        members: e.members?.length ?? 0,
        reported: e.reported === true
      }
  }

  /**
   * Applies `request` from `from` (whose dialable addresses are `addrs`). `providers` are the
   * provider records this node holds for the key, consulted only when no claim decides.
   * `connected` says whether the coordinator holds a connection to a peer now: a committed
   * holder that is still connected is loaded, not gone, and reports against it never hand out
   * a lease (default: nobody is).
   */
  decide (from: Holder, request: ClaimRequest, providers: Holder[], connected: (peer: string) => boolean = () => false): ClaimAnswer {
    const { key, op } = request
    let failed = new Set(request.failed ?? [])
    const now = this.now()
    let entry = this.entries.get(key)
    const reportedFailed = entry !== undefined && entry.committed && failed.has(entry.peer) && entry.peer !== from.peer
    if (entry !== undefined && entry.until <= now) {
      this.entries.delete(key)
      entry = undefined
    }
    if (entry?.members !== undefined && failed.size > 0) entry.members = entry.members.filter(m => !failed.has(m.peer))
    if (entry !== undefined && reportedFailed) {
      const held = entry
      const heir = (h: Holder): boolean => h.peer !== from.peer && h.peer !== held.peer && !failed.has(h.peer)
      if (this.ahead(held, from).some(heir) || providers.some(heir)) {
        // Its receivers hold its pieces (and may have finished), or others stored it: they serve
        // the next joins. At 20 hosts one report against the only committed holder, mid-herd,
        // handed a second lease out while 18 receivers held the blob (issue 23).
        held.reported = true
      } else if (connected(held.peer) || (held.lastHolderReports = (held.lastHolderReports ?? 0) + 1) < CLAIM_LAST_HOLDER_REPORTS) {
        // The last holder (for this reporter): named again, even after another joiner's report
        // (the reporter was the first receiver, with nobody ahead of it); while it is connected
        // it is loaded, not gone, and a busy holder means "wait", never a second upstream copy
        // (issue 23); otherwise once more before that copy.
        failed = new Set([...failed].filter(p => p !== held.peer))
        held.reported = false
      } else {
        this.entries.delete(key)
        entry = undefined
      }
    }
    switch (op) {
      case 'release':
        if (entry?.peer === from.peer && !entry.committed) this.entries.delete(key)
        return { status: 'ok' }
      case 'done':
        this.set(key, {
          ...from,
          until: now + this.doneTtlMs,
          committed: true,
          ...(entry?.members !== undefined ? { members: entry.members.filter(m => m.peer !== from.peer) } : {})
        })
        return { status: 'ok' }
      case 'claim':
      case 'renew': {
        if (entry !== undefined && entry.peer !== from.peer && op === 'renew') {
          return { status: 'join', peer: entry.peer, addrs: entry.addrs, committed: entry.committed }
        }
        const holder = entry !== undefined && entry.peer !== from.peer
          ? (entry.committed ? this.inTurn(entry, from, failed, providers) : this.inChain(entry, from))
          : undefined
        if (entry !== undefined && holder === undefined && entry.reported === true) {
          // Every holder left was reported or is the claimant: the claimant fetches.
          this.entries.delete(key)
          entry = undefined
        }
        if (entry !== undefined && holder !== undefined) {
          const others = this.others(entry, [holder.peer, from.peer], failed, providers)
          if (request.pieces === true) this.addMember(entry, from)
          // Piece hashes come from the holder itself, not from a receiver relaying its pieces:
          // one liar poisons its followers' hashes, while its own are held to account by all.
          const seeder = holder.peer !== entry.peer && !entry.committed ? { seeder: holderOf(entry) } : {}
          return {
            status: 'join',
            peer: holder.peer,
            addrs: holder.addrs,
            committed: entry.committed,
            ...(others.length > 0 ? { others } : {}),
            ...seeder
          }
        }
        if (op === 'claim' && entry?.peer !== from.peer) {
          const provider = providers.find(p => p.peer !== from.peer && !failed.has(p.peer))
          if (provider !== undefined) {
            const others = providers.filter(p => p.peer !== provider.peer && p.peer !== from.peer && !failed.has(p.peer)).slice(
              0,
              CLAIM_OTHERS_MAX
            ).map(holderOf)
            return { status: 'join', peer: provider.peer, addrs: provider.addrs, committed: true, ...(others.length > 0 ? { others } : {}) }
          }
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
      if (entry.members?.some(m => m.peer === peer) === true) entry.members = entry.members.filter(m => m.peer !== peer)
      if (entry.peer === peer && !entry.committed) {
        this.entries.delete(key)
        dropped++
      }
    }
    return dropped
  }

  /**
   * The holder a join is named to while the key is fetched: the first of the fetching holder and
   * the members (in the order they joined) with fewer than CLAIM_CHAIN_FANOUT followers, else the
   * one with fewest. A member that claims again (its holder failed it) is named only to holders
   * ahead of it in the chain, never to its own followers: two receivers would wait on each other.
   */
  private inChain (entry: Entry, from: Holder): Holder {
    let best: { holder: Holder, followers: number, bump: () => void } = {
      holder: entry,
      followers: entry.followers ?? 0,
      bump: () => {
        entry.followers = (entry.followers ?? 0) + 1
      }
    }
    if (best.followers >= this.chainFanout) {
      for (const m of entry.members ?? []) {
        if (m.peer === from.peer) break
        if (m.followers < best.followers) {
          best = {
            holder: m,
            followers: m.followers,
            bump: () => {
              m.followers++
            }
          }
        }
        if (best.followers < this.chainFanout) break
      }
    }
    best.bump()
    return best.holder
  }

  /** Every holder of the key but those in `except` and the failed: the fetching one, members, provider records. */
  private others (entry: Entry, except: string[], failed: Set<string>, providers: Holder[]): Holder[] {
    const out: Holder[] = []
    const seen = new Set(entry.reported === true ? [...except, entry.peer] : except)
    for (const h of [entry, ...(entry.members ?? []), ...providers]) {
      if (seen.has(h.peer) || failed.has(h.peer)) continue
      seen.add(h.peer)
      out.push(holderOf(h))
      if (out.length >= CLAIM_OTHERS_MAX) break
    }
    return out
  }

  /** Remembers `from` as a receiver of the entry's key (the newest CLAIM_MEMBERS_MAX are kept). */
  private addMember (entry: Entry, from: Holder): void {
    const members = entry.members ?? []
    if (!members.some(m => m.peer === from.peer)) members.push({ peer: from.peer, addrs: from.addrs, followers: 0 })
    if (members.length > CLAIM_MEMBERS_MAX) members.splice(0, members.length - CLAIM_MEMBERS_MAX)
    entry.members = members
  }

  /**
   * The committed entry's holder or one of the other holders that stored the key, in turn; once
   * the holder was reported failed, the others and then the members (receivers) that joined
   * before `from` when it is a member itself: one that joined after it may be reading from it,
   * and two receivers that follow each other both wait (a 20-host herd stalled on such a cycle;
   * issue 23). Undefined when none is left for `from`.
   */
  private inTurn (entry: Entry, from: Holder, failed: Set<string>, providers: Holder[]): Holder | undefined {
    const holders: Holder[] = entry.reported === true ? [] : [entry]
    const add = (h: Holder): void => {
      if (h.peer !== from.peer && h.peer !== entry.peer && !failed.has(h.peer) && !holders.some(x => x.peer === h.peer)) holders.push(h)
    }
    for (const p of providers) add(p)
    if (holders.length === 0) { for (const m of this.ahead(entry, from)) add(m) }
    if (holders.length === 0) return undefined
    const turn = entry.joins ?? 0
    entry.joins = turn + 1
    return holders[turn % holders.length]
  }

  /** The entry's members `from` may read from: all of them, or when it is one, those that joined before it. */
  private ahead (entry: Entry, from: Holder): Holder[] {
    const members = entry.members ?? []
    const own = members.findIndex(m => m.peer === from.peer)
    return own < 0 ? members : members.slice(0, own)
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

/** Just the peer and its addresses (what a join answer carries). */
function holderOf (h: Holder): Holder {
  return { peer: h.peer, addrs: h.addrs }
}
