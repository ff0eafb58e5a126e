import type { AbortOptions } from '@libp2p/interface'
import type { Level } from 'level'
import type { Logger } from 'pino'
import { parseRecordKey, recordKey, type RecordKey } from '../keys/record-key.js'
import { MAX_RECORD_CHARS, type RecordAnswer } from '../p2p/fetch/frames.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { tryProviders, type PeerLookupInit } from '../resolver/peer-lookup.js'
import { isNoSpace } from '../store/errors.js'
import { BUCKET_ORIGIN, type BucketTier } from '../bucket/bucket-tier.js'
import type { Digest } from '../oci/digest.js'

/** One kind of small record: its name in keys, whether peers see it, and how a value is checked. */
export interface RecordKind<T> {
  /** `[a-z][a-z0-9-]*`: keys are `rec:<kind> <name>`. */
  kind: string
  /**
   * Whether records of this kind are announced to peers and asked of them. A kind a lying peer
   * could poison (a URL → digest record makes every later download of that URL fail) is shared
   * only inside a private swarm (CACHE_SWARM_KEY), whose members are trusted as for claims.
   */
  shared: boolean
  /** The value if `value` (JSON from a peer, or from the index) is one of this kind; else undefined. */
  parse: (value: unknown) => T | undefined
  /**
   * For a kind whose records change (a tag pushed again): whether `a` is a newer write than `b`,
   * the same way on every node. `find` then asks peers even with a record here, and keeps the
   * newest. Without it a record never changes once made (the first found is kept).
   */
  newer?: (a: T, b: T) => boolean
  /**
   * Announce a record this node writes at once, not when the node is next quiet: a write other
   * nodes wait for (a pushed tag a test job pulls right after the build job).
   */
  urgent?: boolean
  /**
   * A kind whose records are listed by group across the swarm (a repository's tags): its names
   * are `<group>:<item>`, the group without a colon, and a record appears in its group's listing
   * when this says so (a deleted tag does not). Each node holding a record of a group announces
   * the group's listing key, `rec:list <kind>/<group>`, and answers it with its names.
   */
  listed?: (value: T) => boolean
}

/** The kind of listing keys (`rec:list <kind>/<group>`): reserved. */
const LIST_KIND = 'list'
/** Providers of a listing key asked for their names, at most. */
const LIST_PEERS = 3

/** Providers asked for a record of a kind with `newer`, at most. */
const NEWEST_OF = 3

/** A record as kept: its value, when it was made, and the peer it came from (if it did). */
export interface StoredRecord<T> {
  value: T
  storedAt: number
  peer?: string
}

export interface SwarmRecordsInit {
  /** The store's index: records live in its `records` sublevel. */
  db: Level<string, unknown>
  /** Peers to ask; undefined without P2P (every record is then this node's own). */
  peers?: PeerLookupInit | undefined
  /**
   * The bucket (CACHE_S3_URL): every record this node writes goes to it, and a record nobody in
   * the swarm has is looked for there (the fleet scaled to zero overnight).
   */
  bucket?: Pick<BucketTier, 'readRecord' | 'writeRecord' | 'listRecords'> | undefined
  log: Logger
}

interface Entry {
  value: unknown
  storedAt: number
}

/** The part of the index's `records` sublevel the tables use. */
interface RecordIndex {
  get: (key: string) => Promise<Entry | undefined>
  put: (key: string, value: Entry) => Promise<void>
  del: (key: string) => Promise<void>
  keys: (range?: { gte?: string, lt?: string, limit?: number }) => AsyncIterable<string>
  iterator: (range: { gte: string, lt: string, limit: number }) => AsyncIterable<[string, Entry]>
}

/**
 * Small records shared over the swarm (issue 24, point 5): a value under a name, per kind, kept
 * in the index and, for shared kinds, announced on the DHT under `rec:<kind> <name>` and
 * answered to peers over the fetch protocol (a `record` in the header, no bytes). A record a
 * peer sends is checked by its kind before it is kept. The URL → digest records of immutable
 * downloads are the first kind; tags pushed to the swarm and Actions cache entries extend it.
 */
export class SwarmRecords {
  private readonly db: RecordIndex
  /** The table of each kind defined, by kind name. */
  private readonly tables = new Map<string, RecordTable<unknown>>()

  constructor (private readonly init: SwarmRecordsInit) {
    this.db = init.db.sublevel<string, Entry>('records', { valueEncoding: 'json' })
  }

  /** The table of one kind. @throws Error when the kind is malformed or defined twice */
  define<T> (kind: RecordKind<T>): RecordTable<T> {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(kind.kind) || kind.kind === LIST_KIND || this.tables.has(kind.kind)) {
      throw new Error(`record kind "${kind.kind}" is malformed or defined twice`)
    }
    const table = new RecordTable(kind, this.db, this.init)
    this.tables.set(kind.kind, table as RecordTable<unknown>)
    return table
  }

  /**
   * A peer asks for `key`: this node's own record, for kinds it shares; for a listing key, the
   * names of the group this node lists (a JSON array, as many as fit MAX_RECORD_CHARS, in name
   * order); undefined otherwise.
   */
  async answer (key: RecordKey): Promise<RecordAnswer | undefined> {
    const parsed = parseRecordKey(key)
    if (parsed?.kind === LIST_KIND) return await this.answerList(parsed.name)
    const kind = parsed === undefined ? undefined : this.tables.get(parsed.kind)?.kind
    if (parsed === undefined || kind?.shared !== true) return undefined
    const entry = await this.db.get(`${parsed.kind} ${parsed.name}`)
    if (entry === undefined || kind.parse(entry.value) === undefined) return undefined
    const value = JSON.stringify(entry.value)
    return value.length <= MAX_RECORD_CHARS ? { value, storedAt: entry.storedAt } : undefined
  }

  /**
   * A record a peer asks this node to keep (a replica of its push): kept when it checks out by
   * its kind (a shared one) and is not older than this node's own; announced at once.
   * @returns the keys to find it by (the record's, and its group's listing key) when this node
   * now holds `value` or a newer write; undefined for a key of a kind it does not share, or a
   * value that is not of the kind
   */
  async accept (key: RecordKey, value: string): Promise<RecordKey[] | undefined> {
    const parsed = parseRecordKey(key)
    const table = parsed === undefined ? undefined : this.tables.get(parsed.kind)
    const kind = table?.kind
    if (parsed === undefined || table === undefined || kind?.shared !== true) return undefined
    let checked: unknown
    try {
      checked = kind.parse(JSON.parse(value))
    } catch {
      return undefined
    }
    if (checked === undefined) return undefined
    const own = await table.get(parsed.name)
    const list = listKey(kind, parsed.name)
    if (own !== undefined && (kind.newer === undefined || !kind.newer(checked, own.value))) {
      return [key, ...(list !== undefined ? [list] : [])]
    }
    return await table.keep(parsed.name, checked, Date.now(), kind.urgent === true)
  }

  /**
   * The keys of every record of a shared kind, and the listing keys of their groups: announced
   * again at start-up, like stored blobs.
   */
  async *swarmKeys (): AsyncGenerator<RecordKey> {
    const groups = new Set<string>()
    for await (const key of this.db.keys()) {
      const space = key.indexOf(' ')
      const kind = this.tables.get(key.slice(0, space))?.kind
      if (kind?.shared !== true) continue
      const name = key.slice(space + 1)
      yield recordKey(kind.kind, name)
      const list = listKey(kind, name)
      if (list !== undefined && !groups.has(list)) {
        groups.add(list)
        yield list
      }
    }
  }

  private async answerList (name: string): Promise<RecordAnswer | undefined> {
    const slash = name.indexOf('/')
    const table = this.tables.get(name.slice(0, slash))
    const listed = table?.kind.listed
    const group = name.slice(slash + 1)
    if (slash < 0 || table === undefined || !table.kind.shared || listed === undefined || group.includes(':')) return undefined
    const names: string[] = []
    let chars = 2
    for (const record of await table.list(`${group}:`, MAX_RECORD_CHARS)) {
      if (!listed(record.value)) continue
      chars += JSON.stringify(record.name).length + 1
      if (chars > MAX_RECORD_CHARS) break
      names.push(record.name)
    }
    return { value: JSON.stringify(names), storedAt: Date.now() }
  }
}

/** The listing key of `name`'s group, for a listed kind; undefined otherwise. */
function listKey<T> (kind: RecordKind<T>, name: string): RecordKey | undefined {
  const colon = name.indexOf(':')
  return kind.listed === undefined || colon <= 0 ? undefined : recordKey(LIST_KIND, `${kind.kind}/${name.slice(0, colon)}`)
}

/** A peer's listing answer: the names of `group` in it, or undefined when it is not one. */
function parseListing (value: string, group: string): string[] | undefined {
  let names: unknown
  try {
    names = JSON.parse(value)
  } catch {
    return undefined
  }
  if (!Array.isArray(names) || !names.every(n => typeof n === 'string' && n.startsWith(`${group}:`) && !/\s/.test(n))) return undefined
  return names as string[]
}

/** The records of one kind. */
export class RecordTable<T> {
  constructor (readonly kind: RecordKind<T>, private readonly db: RecordIndex, private readonly init: SwarmRecordsInit) {}

  /** Whether records of this kind are announced to peers and asked of them. */
  get shared (): boolean {
    return this.kind.shared
  }

  /** The swarm key of `name`'s record (`rec:<kind> <name>`). */
  key (name: string): RecordKey {
    return recordKey(this.kind.kind, name)
  }

  /** This node's record of `name`. */
  async get (name: string): Promise<StoredRecord<T> | undefined> {
    const entry = await this.db.get(this.dbKey(name))
    const value = entry === undefined ? undefined : this.kind.parse(entry.value)
    return value === undefined || entry === undefined ? undefined : { value, storedAt: entry.storedAt }
  }

  /**
   * This node's record of `name`, else (a shared kind) the first a peer has that checks out, kept
   * here from then on. For a kind that changes (`newer`), peers are asked even with a record
   * here (up to NEWEST_OF answers within the lookup budget) and the newest write is kept and
   * returned. Peers that fail or answer wrongly are skipped.
   */
  async find (name: string, options: AbortOptions = {}): Promise<StoredRecord<T> | undefined> {
    const { signal } = options
    const own = await this.get(name)
    const peers = this.init.peers
    const newer = this.kind.newer
    if ((own !== undefined && newer === undefined) || !this.kind.shared || peers === undefined) return own ?? await this.fromBucket(name)
    const key = recordKey(this.kind.kind, name)
    const answers: Array<StoredRecord<T>> = []
    await tryProviders(
      peers,
      key,
      { budgetMs: peers.lookupTimeoutMs + peers.idleMs, ...(signal !== undefined ? { signal } : {}) },
      async (peer, { signal: attempt }) => {
        const answer = await peers.swarm.fetch(peer, { key, start: 0, end: 0 }, { signal: attempt, idleMs: peers.idleMs })
        answer.close()
        let value: T | undefined
        try {
          value = answer.record === undefined ? undefined : this.kind.parse(JSON.parse(answer.record.value))
        } catch {
          value = undefined
        }
        if (value === undefined || answer.record === undefined) {
          throw new PeerFetchError(answer.peer, 'protocol', `answered ${key} without a ${this.kind.kind} record`)
        }
        answers.push({ value, storedAt: answer.record.storedAt, peer: answer.peer })
        // A record that never changes: the first is the answer. One that does: a few, the newest.
        return newer === undefined || answers.length >= NEWEST_OF ? true : undefined
      }
    )
    let best = own
    for (const a of answers) if (best === undefined || (newer !== undefined && newer(a.value, best.value))) best = a
    if (best !== undefined && best !== own) await this.keep(name, best.value, best.storedAt)
    return best ?? await this.fromBucket(name)
  }

  /** The bucket's record of `name` when it checks out by this kind, kept here from then on. */
  private async fromBucket (name: string): Promise<StoredRecord<T> | undefined> {
    const found = await this.init.bucket?.readRecord(this.kind.kind, name)
    const value = found === undefined ? undefined : this.kind.parse(found.value)
    if (found === undefined || value === undefined) return undefined
    await this.keep(name, value, found.storedAt)
    return { value, storedAt: found.storedAt, peer: BUCKET_ORIGIN }
  }

  /**
   * This node's records whose names start with `prefix`, in name order, at most `limit` (a
   * bounded listing: `tags/list` of a repository).
   */
  async list (prefix: string, limit: number): Promise<Array<{ name: string } & StoredRecord<T>>> {
    const from = this.dbKey(prefix)
    const out: Array<{ name: string } & StoredRecord<T>> = []
    for await (const [key, entry] of this.db.iterator({ gte: from, lt: `${from}\uffff`, limit })) {
      const value = this.kind.parse(entry.value)
      if (value !== undefined) out.push({ name: key.slice(this.kind.kind.length + 1), value, storedAt: entry.storedAt })
    }
    return out
  }

  /**
   * The names of `group` (a listed kind, see RecordKind.listed) across the swarm, in name order,
   * at most `limit`: this node's own, and those the first LIST_PEERS holders of the group's
   * listing key name (each answer bounded by MAX_RECORD_CHARS). This node's record of a name
   * decides whether it is listed; a name only peers know is listed as they say. Eventually
   * consistent: a peer that has not seen a deletion yet still lists the name.
   */
  async names (group: string, limit: number, options: AbortOptions = {}): Promise<string[]> {
    const { signal } = options
    const listed = this.kind.listed
    if (listed === undefined) throw new Error(`records of kind ${this.kind.kind} are not listed`)
    const known = new Map<string, boolean>()
    for (const r of await this.list(`${group}:`, Math.max(limit, 1) * 4)) known.set(r.name, listed(r.value))
    const peers = this.init.peers
    const key = listKey(this.kind, `${group}:`)
    if (this.kind.shared && peers !== undefined && key !== undefined) {
      let answers = 0
      await tryProviders(
        peers,
        key,
        { budgetMs: peers.lookupTimeoutMs + peers.idleMs, ...(signal !== undefined ? { signal } : {}) },
        async (peer, { signal: attempt }) => {
          const answer = await peers.swarm.fetch(peer, { key, start: 0, end: 0 }, { signal: attempt, idleMs: peers.idleMs })
          answer.close()
          const names = answer.record === undefined ? undefined : parseListing(answer.record.value, group)
          if (names === undefined) throw new PeerFetchError(answer.peer, 'protocol', `answered ${key} without a listing`)
          for (const name of names) if (!known.has(name)) known.set(name, true)
          return ++answers >= LIST_PEERS ? true : undefined
        }
      )
    }
    // Names only the bucket still has (nobody holds them now): listed when their record says so.
    let reads = 0
    for (const name of await this.init.bucket?.listRecords(this.kind.kind, `${group}:`, Math.max(limit, 1) * 4) ?? []) {
      if (known.has(name) || !name.startsWith(`${group}:`) || ++reads > limit) continue
      const found = await this.fromBucket(name)
      if (found !== undefined) known.set(name, listed(found.value))
    }
    return [...known].filter(([, shown]) => shown).map(([name]) => name).sort().slice(0, limit)
  }

  /**
   * Keeps `value` under `name` (announced, for a shared kind); on a full disk it is not kept.
   * With `announced`, resolves only once the announcement is done (or that signal aborts): a
   * write other nodes look for right after it is acknowledged. `after`: the blobs the record
   * points at, which the bucket gets first.
   */
  async put (name: string, value: T, opts: { announced?: AbortSignal, after?: Digest[] } = {}): Promise<void> {
    const storedAt = Date.now()
    const keys = await this.keep(name, value, storedAt, this.kind.urgent === true)
    this.init.bucket?.writeRecord(this.kind.kind, name, value, storedAt, opts.after !== undefined ? { after: opts.after } : {})
    const swarm = this.init.peers?.swarm
    if (opts.announced !== undefined && keys.length > 0 && swarm?.provideNow !== undefined) {
      await swarm.provideNow(keys, { signal: opts.announced }).catch(() => {})
    }
  }

  /** Forgets `name` here (and stops announcing it). */
  async delete (name: string): Promise<void> {
    await this.db.del(this.dbKey(name))
    if (this.kind.shared) this.init.peers?.swarm.forget(recordKey(this.kind.kind, name))
  }

  /**
   * Keeps `value` under `name` as made at `storedAt`, announced (at once with `now`) for a shared
   * kind. Returns the keys announced (none when not kept, or not shared).
   */
  async keep (name: string, value: T, storedAt: number, now = false): Promise<RecordKey[]> {
    try {
      await this.db.put(this.dbKey(name), { value, storedAt })
    } catch (err) {
      if (isNoSpace(err)) return []
      throw err
    }
    if (!this.kind.shared) return []
    const list = listKey(this.kind, name)
    const keys = [recordKey(this.kind.kind, name), ...(list !== undefined ? [list] : [])]
    for (const key of keys) this.init.peers?.swarm.announce(key, now ? { now: true } : undefined)
    return keys
  }

  private dbKey (name: string): string {
    return `${this.kind.kind} ${name}`
  }
}
