import type { Level } from 'level'
import type CachePolicy from 'http-cache-semantics'
import type { Digest } from '../oci/digest.js'
import type { HeaderMap } from './headers.js'
import { apiKey, parseApiKey, type ApiKey } from '../keys/api-key.js'

/** A stored response: its policy (RFC 9111 state), what to send back, and the body by digest. */
export interface ApiRecord {
  policy: CachePolicy.CachePolicyObject
  status: number
  headers: HeaderMap
  body: Digest
  size: number
  scope: string
  /**
   * Whose validators the headers hold, when that is known beyond this node: the
   * validatorIdentity of the fleet credential that received them. A node sends the stored ETag
   * upstream only with that credential (GitHub's ETags are token-specific).
   */
  validator?: string
  /** The request's Accept: part of the swarm key (the response may vary on it). */
  accept: string
  storedAt: number
}

/** A record with its body, and its policy parsed (a HotEntry is one; so is a record read from disk). */
export interface StoredResponse {
  record: ApiRecord
  body: Buffer
  policy: CachePolicy
  /** The headers a HIT sends, as of one second (their `Age` has one-second resolution): see CacheSemantics.hit. */
  hitHeaders?: { second: number, headers: HeaderMap }
}

/** A record removed because its body left the store, and the swarm key it was announced under. */
export interface DroppedRecord {
  resource: string
  scope: string
  accept: string
  key: ApiKey
}

/**
 * Responses by request (`<upstream> <path?query>`) and scope. Bodies live in the blob store
 * under their sha256, so identical bodies are stored once.
 */
export class ApiRecords {
  private readonly db
  /** `<body digest>\0<resource>\0<scope>\0<accept>`: which records a body holds up. */
  private readonly byBody

  constructor (private readonly root: Level<string, unknown>) {
    this.db = root.sublevel<string, ApiRecord>('api', { valueEncoding: 'json' })
    this.byBody = root.sublevel<string, string>('api-body', { valueEncoding: 'utf8' })
  }

  async get (resource: string, scope: string, accept: string): Promise<ApiRecord | undefined> {
    return await this.db.get(`${resource}\0${scope}\0${accept}`)
  }

  /** Every scope's (and Accept's) record of `resource`: candidates for a conditional request. */
  async all (resource: string): Promise<ApiRecord[]> {
    const out: ApiRecord[] = []
    for await (const value of this.db.values({ gt: `${resource}\0`, lt: `${resource}\0\uffff`, limit: 64 })) out.push(value)
    return out
  }

  /** The newest record of `resource` negotiated for `accept`, from any scope: what peers get. */
  async newest (resource: string, accept: string): Promise<ApiRecord | undefined> {
    const matching = (await this.all(resource)).filter(r => r.accept === accept)
    return matching.sort((a, b) => b.storedAt - a.storedAt)[0]
  }

  /**
   * What a peer asking for `key` gets: status, headers, the body's digest and whose validators
   * they are; never the scope or policy.
   */
  async forPeer (key: ApiKey): Promise<{ status: number, headers: HeaderMap, body: Digest, validator?: string } | undefined> {
    const parsed = parseApiKey(key)
    if (parsed === undefined) return undefined
    const record = await this.newest(parsed.resource, parsed.accept)
    if (record === undefined) return undefined
    return {
      status: record.status,
      headers: record.headers,
      body: record.body,
      ...(record.validator !== undefined ? { validator: record.validator } : {})
    }
  }

  async put (resource: string, record: ApiRecord): Promise<void> {
    await this.root.batch()
      .put(`${resource}\0${record.scope}\0${record.accept}`, record, { sublevel: this.db })
      .put(`${record.body}\0${resource}\0${record.scope}\0${record.accept}`, '', { sublevel: this.byBody })
      .write()
  }

  /**
   * Deletes the records whose body is `digest` (it left the blob store) and returns the swarm
   * keys they were announced under, to withdraw.
   */
  async dropBody (digest: Digest): Promise<DroppedRecord[]> {
    const dropped: DroppedRecord[] = []
    const batch = this.root.batch()
    for await (const indexKey of this.byBody.keys({ gt: `${digest}\0`, lt: `${digest}\0\uffff`, limit: 10_000 })) {
      batch.del(indexKey, { sublevel: this.byBody })
      const [, resource = '', scope = '', accept = ''] = indexKey.split('\0')
      const recordKey = `${resource}\0${scope}\0${accept}`
      const record = await this.db.get(recordKey)
      // The index may be stale: the record since got another body.
      if (record?.body !== digest) continue
      batch.del(recordKey, { sublevel: this.db })
      dropped.push({ resource, scope, accept, key: apiKey(resource, accept) })
    }
    await batch.write()
    return dropped
  }
}
