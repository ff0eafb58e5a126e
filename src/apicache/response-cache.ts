import type CachePolicy from 'http-cache-semantics'
import type { AbortOptions } from '@libp2p/interface'
import type { StoreReader, StoreWriter } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import type { Clock } from '../clock/clock.js'
import { sha256Digest, type Digest } from '../oci/digest.js'
import { normalizeAccept, type ApiKey } from '../keys/api-key.js'
import { isNoSpace } from '../store/errors.js'
import type { ApiGetAnswer, RawHeaders } from '../upstream/api-client.js'
import { endToEnd, type HeaderMap } from './headers.js'
import type { ApiRecord, ApiRecords, StoredResponse } from './records.js'
import { HotRecords, type HotEntry } from './hot-records.js'
import { varyInKey, type CacheSemantics } from './cache-semantics.js'
import type { RevalidationCandidate } from './candidate-search.js'
import type { ApiCacheAnswer } from './answer.js'

/** Where stored records are made known to other nodes (ApiPeers). */
export interface SwarmPresence {
  /** This node now holds a record of `resource` for `accept`. */
  announce: (resource: string, accept: string) => void
  /** The record announced under `key` is gone. */
  withdraw: (key: ApiKey) => void
}

export interface ResponseCacheInit {
  store: Pick<StoreReader, 'stat' | 'openRead'> & Pick<StoreWriter, 'put'>
  records: ApiRecords
  stats: Stats
  semantics: CacheSemantics
  swarm: SwarmPresence
  /** Largest body stored, in bytes (CACHE_API_MAX_BODY). */
  maxBody: number
  clock: Clock
}

/**
 * The stored API responses: records (ApiRecords) with their bodies in the blob store, the most
 * recent also in memory (HotRecords). Answers from upstream are stored here as RFC 9111 allows
 * (a 200, or a 304 that updates a candidate's headers), announced to the swarm, and forgotten
 * when their body leaves the blob store.
 */
export class ResponseCache {
  private readonly hot = new HotRecords()

  constructor (private readonly init: ResponseCacheInit) {}

  /** The in-memory copy of `resource` under `scope` for `accept`, if there is one (no I/O). */
  inMemory (resource: string, scope: string, accept: string): HotEntry | undefined {
    return this.hot.get(resource, scope, accept)
  }

  /**
   * This scope's record of `resource` for `accept` (normalized) with its body and policy, from
   * memory or disk. Undefined: none, or its body is no longer stored.
   * @throws the blob store's and the index's errors; AbortError
   */
  async stored (resource: string, scope: string, accept: string, options: AbortOptions = {}): Promise<StoredResponse | undefined> {
    const hot = this.hot.get(resource, scope, accept)
    if (hot !== undefined) return hot
    options.signal?.throwIfAborted()
    const record = await this.init.records.get(resource, scope, accept)
    if (record === undefined) return undefined
    const body = await this.readBody(record.body, options)
    return body === undefined ? undefined : { record, body, policy: this.init.semantics.Policy.fromObject(record.policy) }
  }

  /**
   * The body stored under `digest`, whole; undefined when it left the blob store.
   * @throws the blob store's errors; AbortError
   */
  async readBody (digest: Digest, options: AbortOptions = {}): Promise<Buffer | undefined> {
    options.signal?.throwIfAborted()
    const local = await this.init.store.openRead(digest)
    if (local === undefined) return undefined
    try {
      return await local.read()
    } finally {
      await local.release()
    }
  }

  /**
   * RFC 9111 4.3.4: a 304 (`res`, its headers) confirmed `candidate`: the 304's headers update
   * the candidate's, and the candidate's body is stored under `scope` (when its policy allows).
   * `validator`: see ApiRecord.validator. `options` is not checked: a confirmation the upstream
   * gave is kept even when every caller left.
   * @throws the blob store's and the index's errors, except a full disk (then it is not stored)
   */
  async revalidated (
    resource: string,
    scope: string,
    request: CachePolicy.Request,
    candidate: RevalidationCandidate,
    res: { headers: RawHeaders },
    validator: string | undefined,
    _options: AbortOptions = {}
  ): Promise<ApiCacheAnswer> {
    const merged = { ...candidate.headers, ...endToEnd(res.headers, ['content-length']) }
    await this.store(resource, scope, request, candidate.status, merged, candidate.body, validator)
    this.init.stats.inc('revalidations_304')
    return {
      cache: 'REVALIDATED',
      status: candidate.status,
      headers: merged,
      body: candidate.body,
      ...(candidate.peer !== undefined ? { peer: candidate.peer } : {})
    }
  }

  /**
   * A full upstream answer: a 200 within CACHE_API_MAX_BODY is stored when its policy allows;
   * any answer is answered (a MISS). A body over the bound is passed on as it arrives, with the
   * upstream's Content-Length. `options`: as for `revalidated`.
   * @throws the blob store's and the index's errors, except a full disk (then it is not stored)
   */
  async fresh (
    resource: string,
    scope: string,
    request: CachePolicy.Request,
    res: ApiGetAnswer,
    validator: string | undefined,
    _options: AbortOptions = {}
  ): Promise<ApiCacheAnswer> {
    if (res.oversize === true) return { cache: 'MISS', status: res.status, headers: endToEnd(res.headers), body: res.body }
    const headers = endToEnd(res.headers, ['content-length'])
    if (res.status === 200 && res.body.byteLength <= this.init.maxBody) {
      await this.store(resource, scope, request, res.status, headers, res.body, validator)
    }
    return { cache: 'MISS', status: res.status, headers, body: res.body }
  }

  /**
   * A body left the blob store: the records it held up are dropped, from memory too, and
   * withdrawn from the swarm.
   * @throws the index's errors; AbortError (before anything is dropped)
   */
  async forgetBody (digest: Digest, options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const dropped = await this.init.records.dropBody(digest)
    for (const { resource, scope, accept, key } of dropped) {
      this.hot.forget(resource, scope, accept)
      this.init.swarm.withdraw(key)
    }
  }

  /**
   * Stores the response if its policy allows: body, record, in-memory copy, announcement. Not
   * abortable (see `revalidated`).
   */
  private async store (
    resource: string,
    scope: string,
    request: CachePolicy.Request,
    status: number,
    headers: HeaderMap,
    body: Buffer,
    validator: string | undefined
  ): Promise<void> {
    const policy = new this.init.semantics.Policy(request, { status, headers }, { shared: scope === 'anon' })
    if (!policy.storable()) return
    const digest = sha256Digest(body)
    const accept = normalizeAccept(request.headers.accept as string | undefined)
    const now = this.init.clock.now()
    const record: ApiRecord = {
      policy: policy.toObject(),
      status,
      headers,
      body: digest,
      size: body.byteLength,
      scope,
      accept,
      storedAt: now,
      ...(validator !== undefined ? { validator } : {})
    }
    try {
      if (await this.init.store.stat(digest) === undefined) await this.init.store.put(digest, body, 'api upstream')
      await this.init.records.put(resource, record)
    } catch (err) {
      // A full disk: the answer is given, not stored (the store says it is full).
      if (!isNoSpace(err)) throw err
      return
    }
    this.hot.set(resource, scope, accept, {
      record,
      body,
      policy,
      freshUntil: this.init.clock.now() + policy.timeToLive(),
      varyInKey: varyInKey(headers.vary)
    })
    this.init.swarm.announce(resource, accept)
  }
}
