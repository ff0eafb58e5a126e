import type { Level } from 'level'
import type { Logger } from 'pino'
import { parseRecordKey, recordKey, type RecordKey } from '../keys/record-key.js'
import { MAX_RECORD_CHARS, type RecordAnswer } from '../p2p/fetch/frames.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { tryProviders, type PeerLookupInit } from '../resolver/peer-lookup.js'
import { isNoSpace } from '../store/errors.js'

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
}

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
  log: Logger
}

interface Entry { value: unknown, storedAt: number }

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
  private readonly kinds = new Map<string, RecordKind<unknown>>()

  constructor (private readonly init: SwarmRecordsInit) {
    this.db = init.db.sublevel<string, Entry>('records', { valueEncoding: 'json' })
  }

  /** The table of one kind. @throws Error when the kind is malformed or defined twice */
  define<T> (kind: RecordKind<T>): RecordTable<T> {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(kind.kind) || this.kinds.has(kind.kind)) throw new Error(`record kind "${kind.kind}" is malformed or defined twice`)
    this.kinds.set(kind.kind, kind as RecordKind<unknown>)
    return new RecordTable(kind, this.db, this.init)
  }

  /** A peer asks for `key`: this node's own record, for kinds it shares; undefined otherwise. */
  async answer (key: RecordKey): Promise<RecordAnswer | undefined> {
    const parsed = parseRecordKey(key)
    const kind = parsed === undefined ? undefined : this.kinds.get(parsed.kind)
    if (parsed === undefined || kind?.shared !== true) return undefined
    const entry = await this.db.get(`${parsed.kind} ${parsed.name}`)
    if (entry === undefined || kind.parse(entry.value) === undefined) return undefined
    const value = JSON.stringify(entry.value)
    return value.length <= MAX_RECORD_CHARS ? { value, storedAt: entry.storedAt } : undefined
  }

  /** The keys of every record of a shared kind: announced again at start-up, like stored blobs. */
  async * swarmKeys (): AsyncGenerator<RecordKey> {
    for await (const key of this.db.keys()) {
      const space = key.indexOf(' ')
      if (this.kinds.get(key.slice(0, space))?.shared === true) yield recordKey(key.slice(0, space), key.slice(space + 1))
    }
  }
}

/** The records of one kind. */
export class RecordTable<T> {
  constructor (private readonly kind: RecordKind<T>, private readonly db: RecordIndex, private readonly init: SwarmRecordsInit) {}

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
  async find (name: string, signal?: AbortSignal): Promise<StoredRecord<T> | undefined> {
    const own = await this.get(name)
    const peers = this.init.peers
    const newer = this.kind.newer
    if ((own !== undefined && newer === undefined) || !this.kind.shared || peers === undefined) return own
    const key = recordKey(this.kind.kind, name)
    const answers: Array<StoredRecord<T>> = []
    await tryProviders(peers, key, { budgetMs: peers.lookupTimeoutMs + peers.idleMs, ...(signal !== undefined ? { signal } : {}) }, async (peer, attempt) => {
      const answer = await peers.swarm.fetch(peer, { key, start: 0, end: 0 }, { signal: attempt, idleMs: peers.idleMs })
      answer.close()
      let value: T | undefined
      try {
        value = answer.record === undefined ? undefined : this.kind.parse(JSON.parse(answer.record.value))
      } catch {
        value = undefined
      }
      if (value === undefined || answer.record === undefined) throw new PeerFetchError(answer.peer, 'protocol', `answered ${key} without a ${this.kind.kind} record`)
      answers.push({ value, storedAt: answer.record.storedAt, peer: answer.peer })
      // A record that never changes: the first is the answer. One that does: a few, the newest.
      return newer === undefined || answers.length >= NEWEST_OF ? true : undefined
    })
    let best = own
    for (const a of answers) if (best === undefined || (newer !== undefined && newer(a.value, best.value))) best = a
    if (best !== undefined && best !== own) await this.keep(name, best.value, best.storedAt)
    return best
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

  /** Keeps `value` under `name` (announced, for a shared kind); on a full disk it is not kept. */
  async put (name: string, value: T): Promise<void> {
    await this.keep(name, value, Date.now(), this.kind.urgent === true)
  }

  /** Forgets `name` here (and stops announcing it). */
  async delete (name: string): Promise<void> {
    await this.db.del(this.dbKey(name))
    if (this.kind.shared) this.init.peers?.swarm.forget(recordKey(this.kind.kind, name))
  }

  private async keep (name: string, value: T, storedAt: number, now = false): Promise<void> {
    try {
      await this.db.put(this.dbKey(name), { value, storedAt })
    } catch (err) {
      if (isNoSpace(err)) return
      throw err
    }
    if (this.kind.shared) this.init.peers?.swarm.announce(recordKey(this.kind.kind, name), now ? { now: true } : undefined)
  }

  private dbKey (name: string): string {
    return `${this.kind.kind} ${name}`
  }
}
