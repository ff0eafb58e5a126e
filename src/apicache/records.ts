import type { Level } from 'level'
import type CachePolicy from 'http-cache-semantics'
import type { Digest } from '../oci/digest.js'
import type { HeaderMap } from './headers.js'
import { parseApiKey, type ApiKey } from './record-key.js'

/** A stored response: its policy (RFC 9111 state), what to send back, and the body by digest. */
export interface ApiRecord {
  policy: CachePolicy.CachePolicyObject
  status: number
  headers: HeaderMap
  body: Digest
  size: number
  scope: string
  /** The request's Accept: part of the swarm key (the response may vary on it). */
  accept: string
  storedAt: number
}

/**
 * Responses by request (`<upstream> <path?query>`) and scope. Bodies live in the blob store
 * under their sha256, so identical bodies are stored once.
 */
export class ApiRecords {
  private readonly db

  constructor (root: Level<string, unknown>) {
    this.db = root.sublevel<string, ApiRecord>('api', { valueEncoding: 'json' })
  }

  async get (resource: string, scope: string): Promise<ApiRecord | undefined> {
    return await this.db.get(`${resource}\0${scope}`)
  }

  /** Every scope's record of `resource`: candidates for a conditional request. */
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

  /** What a peer asking for `key` gets: status, headers and the body's digest; never the scope or policy. */
  async forPeer (key: ApiKey): Promise<{ status: number, headers: HeaderMap, body: Digest } | undefined> {
    const parsed = parseApiKey(key)
    if (parsed === undefined) return undefined
    const record = await this.newest(parsed.resource, parsed.accept)
    return record === undefined ? undefined : { status: record.status, headers: record.headers, body: record.body }
  }

  async put (resource: string, record: ApiRecord): Promise<void> {
    await this.db.put(`${resource}\0${record.scope}`, record)
  }
}
