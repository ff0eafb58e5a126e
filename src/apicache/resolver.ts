import CachePolicy from 'http-cache-semantics'
import type { Logger } from 'pino'
import type { BlobStore } from '../store/blob-store.js'
import type { Stats } from '../metrics/stats.js'
import { sha256Digest, type Digest } from '../oci/digest.js'
import { apiKey, isApiKey, normalizeAccept, parseApiKey, type ApiKey } from '../keys/api-key.js'
import { tryProviders, type PeerLookupInit } from '../resolver/peer-lookup.js'
import { fetchVerified, MemorySink } from '../resolver/peer-fetch.js'
import { SingleFlight } from '../resolver/single-flight.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import type { ApiUpstream, ApiUpstreams, UpstreamAnswer } from '../upstream/api-client.js'
import { FleetCredentialError, validatorIdentity, type FleetCredential } from '../upstream/fleet-credential.js'
import { endToEnd, withoutRateLimit, type HeaderMap } from './headers.js'
import type { ApiRecord, ApiRecords } from './records.js'
import type { Scopes } from './scope.js'
import { apiTarget, publicSection, type ApiTarget } from './github-resource.js'
import { HotRecords } from './hot-records.js'
import { RepositoryAccess, visibilityOf } from './repository-access.js'
import { FLEET_SCOPE } from './constants.js'
import { isNoSpace } from '../store/errors.js'
import { systemClock, type Clock } from '../clock/clock.js'

export interface ApiResolverInit {
  client: ApiUpstreams
  store: BlobStore
  records: ApiRecords
  scopes: Scopes
  /** Fleet credentials by API upstream name (CACHE_API_AUTH, CACHE_API_APP). */
  fleet: Map<string, FleetCredential>
  stats: Stats
  /** Largest body stored, in bytes (CACHE_API_MAX_BODY). */
  maxBody: number
  /** The swarm, when CACHE_ENABLE_P2P is on: a record a peer holds can be revalidated here. */
  peers?: PeerLookupInit | undefined
  log: Logger
  /** Freshness, ages and expiry are computed on it (default: the system clock). */
  clock?: Clock
}

/** A GET (or HEAD) to resolve: the upstream, its path and query, the client's end-to-end headers. */
export interface ApiRequest {
  upstream: ApiUpstream
  path: string
  /** Without conditional or hop-by-hop headers; `authorization` is the client's credential. */
  headers: HeaderMap
}

export type CacheStatus = 'HIT' | 'MISS' | 'REVALIDATED'

export interface ApiAnswer {
  cache: CacheStatus
  status: number
  headers: HeaderMap
  body: Buffer
  /** The peer whose copy a 304 confirmed. */
  peer?: string
}

/** A stored response that can be revalidated: this node's (any scope) or a peer's. */
interface Candidate {
  status: number
  headers: HeaderMap
  body: Buffer
  /** See ApiRecord.validator. */
  validator?: string | undefined
  peer?: string
}

/** See ApiResolver.decide. */
interface Decision {
  scope: string
  target: ApiTarget
  /** `<upstream> <path?query>`. */
  resource: string
  /** Normalized (the record key's). */
  accept: string
  fleet?: FleetCredential
  via: 'fleet' | 'client' | 'unknown'
}

/** The fleet credential could not be used for this request: the client's own is. */
class FleetUnusable extends Error {}

/** Accept of the fleet's `GET /repos/{owner}/{repo}` that learns a repository's visibility. */
const VISIBILITY_ACCEPT = 'application/vnd.github+json'
/** A failing fleet credential is logged at most this often per upstream. */
const FLEET_WARN_INTERVAL_MS = 60_000

/**
 * Local → peers → upstream for API GETs, with RFC 9111 semantics (http-cache-semantics).
 *
 * Whose response a client may be given (SPEC 3.3):
 * - With a fleet credential for the upstream, a repository's resources are fetched and
 *   revalidated with it (its ETags are stable, so repeats are free 304s) and stored under the
 *   `fleet` scope. They go to any client when the repository is public, and to a client whose
 *   credential proved read access to that area of a private repository with a request of its own.
 * - Otherwise responses are partitioned by credential scope. A client is given another scope's
 *   (or a peer's) stored body only after its own conditional request got a 304 upstream; that
 *   request carries `If-Modified-Since`, never another token's ETag (GitHub's ETags are
 *   token-specific: it would be a full, charged 200).
 * Concurrent identical requests share one upstream request (per scope, or per fleet).
 */
export class ApiResolver {
  private readonly inflight = new SingleFlight<string, Promise<ApiAnswer>>()
  private readonly hot = new HotRecords()
  private readonly access: RepositoryAccess
  private readonly fleetWarnedAt = new Map<string, number>()
  private readonly clock: Clock
  /** CachePolicy computing ages and freshness on `clock`. */
  private readonly Policy: typeof CachePolicy

  constructor (private readonly init: ApiResolverInit) {
    this.clock = init.clock ?? systemClock
    this.access = new RepositoryAccess(this.clock)
    this.Policy = policyOn(this.clock)
  }

  /**
   * The answer to `req` when a fresh copy this client may have is in memory: a HIT with no I/O,
   * no coalescing and no signal (the hot path). Undefined: ask `get`.
   */
  hit (req: ApiRequest): ApiAnswer | undefined {
    const d = this.decide(req)
    if (d.via === 'unknown') return undefined
    const scope = d.via === 'fleet' ? FLEET_SCOPE : d.scope
    const hot = this.hot.get(d.resource, scope, d.accept)
    if (hot === undefined) return undefined
    // The policy's verdict, memoized: while the entry is fresh, a request without its own
    // Cache-Control/Pragma whose Vary-ed headers are all in the key (Accept, Authorization as
    // the scope, Accept-Encoding never forwarded) is what satisfiesWithoutRevalidation accepts.
    const quick = hot.varyInKey && this.clock.now() < hot.freshUntil && req.headers['cache-control'] === undefined && req.headers.pragma === undefined
    if (quick ? !shareableWithoutAsking(hot.record, scope) : !this.servable(hot, scope, req)) return undefined
    return { cache: 'HIT', status: hot.record.status, headers: hitHeaders(hot, this.clock), body: hot.body }
  }

  /**
   * The answer to `req`. `signal`: this caller left; the upstream request stops when every
   * caller sharing it has.
   * @throws undici errors when the upstream can't be reached, AbortError
   */
  async get (req: ApiRequest, signal: AbortSignal): Promise<ApiAnswer> {
    let d = this.decide(req)
    if (d.via === 'unknown' && d.fleet !== undefined && d.target.repo !== undefined) {
      try {
        await this.learnVisibility(req, d.fleet, d.target.repo, signal)
        d = this.decide(req)
      } catch (err) {
        if (!(err instanceof FleetUnusable)) throw err
      }
    }
    if (d.via === 'fleet' && d.fleet !== undefined) {
      const fleet = d.fleet
      try {
        return await this.coalesced(`${d.resource}\0${FLEET_SCOPE}\0${d.accept}`, s => this.viaFleet(req, fleet, s), signal)
      } catch (err) {
        if (!(err instanceof FleetUnusable)) throw err
      }
    }
    const { scope, target } = d
    const answer = await this.coalesced(`${d.resource}\0${scope}\0${d.accept}`, s => this.viaClient(req, scope, target, s), signal)
    // The client's own credential reached this area of the repository: it may be served from
    // the fleet's copies of it for a while.
    if (target.repo !== undefined && scope !== 'anon' && answer.cache !== 'HIT' && answer.status >= 200 && answer.status < 300) {
      this.access.prove(scope, req.upstream.name, target.repo, target.section)
    }
    return answer
  }

  /**
   * Whose copy `req` is answered from, decided without I/O: `fleet` (an area anyone may read of
   * a repository the fleet credential sees as public, or an area this client proved access to),
   * `client` (its own scope), or `unknown` (the repository's visibility is still to be learned).
   */
  private decide (req: ApiRequest): Decision {
    const scope = this.init.scopes.of(req.headers.authorization)
    const target = apiTarget(req.path)
    const d: Decision = { scope, target, resource: `${req.upstream.name} ${req.path}`, accept: normalizeAccept(req.headers.accept), via: 'client' }
    const fleet = this.init.fleet.get(req.upstream.name)
    if (fleet === undefined || target.repo === undefined) return d
    d.fleet = fleet
    const visibility = this.access.visibility(req.upstream.name, target.repo)
    if (visibility === undefined) d.via = 'unknown'
    else if ((visibility === 'public' && publicSection(target.section)) ||
      (visibility !== 'hidden' && this.access.proven(scope, req.upstream.name, target.repo, target.section))) d.via = 'fleet'
    return d
  }

  /**
   * Whether a stored copy under `scope` answers `req` without asking upstream: fresh (RFC 9111)
   * and shareable without revalidation (anonymous, the fleet's, or marked `public`).
   */
  private servable (stored: { record: ApiRecord, policy: CachePolicy }, scope: string, req: ApiRequest): boolean {
    return shareableWithoutAsking(stored.record, scope) && stored.policy.satisfiesWithoutRevalidation(this.policyRequest(req, scope))
  }

  /** A body left the blob store: the records it held up are dropped and withdrawn from the DHT. */
  async forgetBody (digest: Digest): Promise<void> {
    const dropped = await this.init.records.dropBody(digest)
    for (const { resource, scope, accept, key } of dropped) {
      this.hot.forget(resource, scope, accept)
      this.init.peers?.swarm.forget(key)
    }
  }

  /** `anon`, `fleet`, or the first 12 characters of the credential's scope: a metrics label. */
  credentialLabel (upstream: string, authorization: string | undefined): string {
    if (this.init.fleet.get(upstream)?.owns(authorization) === true) return FLEET_SCOPE
    const scope = this.init.scopes.of(authorization)
    return scope === 'anon' ? scope : scope.slice(0, 12)
  }

  private async coalesced (key: string, run: (signal: AbortSignal) => Promise<ApiAnswer>, signal: AbortSignal): Promise<ApiAnswer> {
    const share = this.inflight.join(key, s => {
      const pending = run(s)
      return { value: pending, done: pending }
    }, signal)
    try {
      return await share.value
    } finally {
      share.release()
    }
  }

  /**
   * Learns what the fleet credential sees of `repo` by fetching the repository with it (with the
   * client's Accept, so the record serves the client's own GET of the repository too; a free 304
   * after the first time). viaFleet records it.
   */
  private async learnVisibility (req: ApiRequest, fleet: FleetCredential, repo: string, signal: AbortSignal): Promise<void> {
    const { upstream } = req
    const path = `/repos/${repo}`
    const accept = req.headers.accept ?? VISIBILITY_ACCEPT
    const probe: ApiRequest = { upstream, path, headers: { accept } }
    await this.coalesced(`${upstream.name} ${path}\0${FLEET_SCOPE}\0${normalizeAccept(accept)}`, s => this.viaFleet(probe, fleet, s), signal)
    // A repository answered with neither (a redirect, an error body) is not shared.
    if (this.access.visibility(upstream.name, repo) === undefined) this.access.learn(upstream.name, repo, 'hidden')
  }

  /** `req` answered from the fleet's copy, revalidated or fetched with the fleet credential. */
  private async viaFleet (req: ApiRequest, fleet: FleetCredential, signal: AbortSignal): Promise<ApiAnswer> {
    const { upstream, path } = req
    const resource = `${upstream.name} ${path}`
    const accept = normalizeAccept(req.headers.accept)
    const policyRequest = this.policyRequest(req, FLEET_SCOPE)
    const stored = await this.stored(resource, FLEET_SCOPE, accept)
    if (stored !== undefined && this.servable(stored, FLEET_SCOPE, req)) {
      this.learnVisibilityFrom(req, stored.record.status, stored.body)
      return { cache: 'HIT', status: stored.record.status, headers: hitHeaders(stored, this.clock), body: stored.body }
    }
    let authorization: string
    try {
      authorization = await fleet.authorization(signal)
    } catch (err) {
      if (!(err instanceof FleetCredentialError)) throw err
      this.fleetWarn(upstream.name, err.message)
      throw new FleetUnusable(err.message)
    }
    const identity = validatorIdentity(authorization)
    const headers = { ...req.headers }
    delete headers.authorization
    const candidate: Candidate | undefined = stored !== undefined
      ? { status: stored.record.status, headers: stored.record.headers, body: stored.body, validator: stored.record.validator }
      : await this.otherScopes(resource, accept, FLEET_SCOPE, identity) ?? await this.fromPeers(resource, accept, signal, identity)
    const conditional = candidate === undefined ? undefined : conditionalHeaders(candidate.headers, candidate.validator === identity)
    const res = await this.init.client.get(upstream, path, { ...headers, authorization, ...conditional }, signal)
    if (res.status === 401 || (res.status === 403 && res.headers['x-ratelimit-remaining'] === '0')) {
      if (res.status === 401) fleet.rejected(authorization)
      const reason = `the fleet credential got ${res.status} from ${upstream.name}${res.status === 401 ? ' (revoked or expired? check CACHE_API_AUTH / CACHE_API_APP)' : ' (its rate limit is spent)'}; clients' own credentials are used meanwhile`
      this.fleetWarn(upstream.name, reason)
      throw new FleetUnusable(reason)
    }
    if (res.status === 304 && candidate !== undefined && conditional !== undefined) {
      const answer = await this.revalidated(resource, FLEET_SCOPE, policyRequest, candidate, res, identity)
      this.learnVisibilityFrom(req, answer.status, answer.body)
      return { ...answer, headers: withoutRateLimit(answer.headers) }
    }
    if (res.status < 200 || res.status >= 300) {
      // Only what the fleet may read is shared: its 403/404 says nothing of what the client may
      // (an admin's token reads a repository's hooks where a read-only fleet token can't).
      this.learnVisibilityFrom(req, res.status, res.body)
      throw new FleetUnusable(`the fleet credential got ${res.status}`)
    }
    const answer = await this.fresh(resource, FLEET_SCOPE, policyRequest, res, identity)
    this.learnVisibilityFrom(req, answer.status, answer.body)
    return { ...answer, headers: withoutRateLimit(answer.headers) }
  }

  /** A repository's own resource (`/repos/{owner}/{repo}`) answered for the fleet says its visibility. */
  private learnVisibilityFrom (req: ApiRequest, status: number, body: Buffer): void {
    const target = apiTarget(req.path)
    if (target.repo !== undefined && req.path.toLowerCase() === `/repos/${target.repo}`) {
      this.access.learn(req.upstream.name, target.repo, visibilityOf(status, body))
    }
  }

  /** `req` under the client's own credential scope. */
  private async viaClient (req: ApiRequest, scope: string, target: ApiTarget, signal: AbortSignal): Promise<ApiAnswer> {
    const { upstream, path } = req
    const resource = `${upstream.name} ${path}`
    const accept = normalizeAccept(req.headers.accept)
    const policyRequest = this.policyRequest(req, scope)
    const stored = await this.stored(resource, scope, accept)
    if (stored !== undefined && this.servable(stored, scope, req)) {
      return { cache: 'HIT', status: stored.record.status, headers: hitHeaders(stored, this.clock), body: stored.body }
    }
    // Our own copy is revalidated with its own validators; another scope's or a peer's only
    // with If-Modified-Since, and only where the representation doesn't depend on who asks.
    const candidate: Candidate | undefined = stored !== undefined
      ? { status: stored.record.status, headers: stored.record.headers, body: stored.body }
      : target.shared ? await this.otherScopes(resource, accept, scope, undefined) ?? await this.fromPeers(resource, accept, signal, undefined) : undefined
    const conditional = candidate === undefined ? undefined : conditionalHeaders(candidate.headers, stored !== undefined)
    const res = await this.init.client.get(upstream, path, { ...req.headers, ...conditional }, signal)
    if (res.status === 304 && candidate !== undefined && conditional !== undefined) {
      return await this.revalidated(resource, scope, policyRequest, candidate, res, undefined)
    }
    return await this.fresh(resource, scope, policyRequest, res, undefined)
  }

  /** The policy (which is stored) sees the scope in place of the credential: no token reaches the disk. */
  private policyRequest (req: ApiRequest, scope: string): CachePolicy.Request {
    const headers: HeaderMap = { ...req.headers, host: req.upstream.url.host }
    if (headers.authorization !== undefined || scope === FLEET_SCOPE) headers.authorization = scope
    // `Vary: Accept` then sees what the cache key sees: the default representation's names as one.
    const accept = normalizeAccept(headers.accept)
    if (accept === '') delete headers.accept
    else headers.accept = accept
    return { url: req.path, method: 'GET', headers }
  }

  /** This scope's record of the request with its body and policy, if the body is still stored. */
  private async stored (resource: string, scope: string, accept: string): Promise<{ record: ApiRecord, body: Buffer, policy: CachePolicy } | undefined> {
    const hot = this.hot.get(resource, scope, accept)
    if (hot !== undefined) return hot
    const record = await this.init.records.get(resource, scope, accept)
    if (record === undefined) return undefined
    const body = await this.readBody(record.body)
    return body === undefined ? undefined : { record, body, policy: this.Policy.fromObject(record.policy) }
  }

  /**
   * Another scope's record for this Accept that the credential about to be sent can revalidate:
   * with its ETag if `identity` (a fleet credential's) received it, else with its Last-Modified.
   */
  private async otherScopes (resource: string, accept: string, scope: string, identity: string | undefined): Promise<Candidate | undefined> {
    for (const record of await this.init.records.all(resource)) {
      if (record.scope === scope || record.accept !== accept) continue
      if (conditionalHeaders(record.headers, identity !== undefined && record.validator === identity) === undefined) continue
      const body = await this.readBody(record.body)
      if (body !== undefined) return { status: record.status, headers: record.headers, body, validator: record.validator }
    }
    return undefined
  }

  /** A peer's stored response for this request (no credential in the key) that `identity` can revalidate (see otherScopes), body verified. */
  private async fromPeers (resource: string, accept: string, signal: AbortSignal, identity: string | undefined): Promise<Candidate | undefined> {
    const peers = this.init.peers
    const key = swarmKey(resource, accept)
    if (peers === undefined || key === undefined) return undefined
    return await tryProviders(peers, key, { signal, budgetMs: peers.lookupTimeoutMs + 2 * peers.idleMs }, async (peer, attempt) => {
      let sink: MemorySink | undefined
      const blob = await fetchVerified(peers, peer, {
        request: { key },
        signal: attempt,
        maxSize: this.init.maxBody,
        open: answer => {
          if (answer.api === undefined) throw new PeerFetchError(answer.peer, 'refused', 'answered an API key without a record')
          if (conditionalHeaders(answer.api.headers, identity !== undefined && answer.api.validator === identity) === undefined) throw new PeerFetchError(answer.peer, 'refused', 'a record without a usable validator')
          sink = new MemorySink(answer.api.body)
          return sink
        }
      })
      if (blob.api === undefined || sink === undefined) throw new PeerFetchError(blob.peer, 'protocol', 'lost its API record')
      return { status: blob.api.status, headers: blob.api.headers, body: sink.body, validator: blob.api.validator, peer: blob.peer }
    })
  }

  /** RFC 9111 4.3.4: the 304's headers update the stored ones; the candidate's body is stored under `scope`. */
  private async revalidated (resource: string, scope: string, request: CachePolicy.Request, candidate: Candidate, res: UpstreamAnswer, validator: string | undefined): Promise<ApiAnswer> {
    const merged = { ...candidate.headers, ...endToEnd(res.headers, ['content-length']) }
    await this.store(resource, scope, request, candidate.status, merged, candidate.body, validator)
    this.init.stats.inc('revalidations_304')
    return { cache: 'REVALIDATED', status: candidate.status, headers: merged, body: candidate.body, ...(candidate.peer !== undefined ? { peer: candidate.peer } : {}) }
  }

  /** A full upstream response: stored when the policy allows, and answered. */
  private async fresh (resource: string, scope: string, request: CachePolicy.Request, res: UpstreamAnswer, validator: string | undefined): Promise<ApiAnswer> {
    const headers = endToEnd(res.headers, ['content-length'])
    if (res.status === 200 && res.body.byteLength <= this.init.maxBody) {
      await this.store(resource, scope, request, res.status, headers, res.body, validator)
    }
    return { cache: 'MISS', status: res.status, headers, body: res.body }
  }

  private async store (resource: string, scope: string, request: CachePolicy.Request, status: number, headers: HeaderMap, body: Buffer, validator: string | undefined): Promise<void> {
    const policy = new this.Policy(request, { status, headers }, { shared: scope === 'anon' })
    if (!policy.storable()) return
    const digest = sha256Digest(body)
    const accept = normalizeAccept(request.headers.accept as string | undefined)
    const record: ApiRecord = {
      policy: policy.toObject(), status, headers, body: digest, size: body.byteLength, scope, accept, storedAt: this.clock.now(),
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
    this.hot.set(resource, scope, accept, { record, body, policy, freshUntil: this.clock.now() + policy.timeToLive(), varyInKey: varyInKey(headers.vary) })
    const key = swarmKey(resource, accept)
    if (key !== undefined) this.init.peers?.swarm.announce(key)
  }

  private async readBody (digest: Digest): Promise<Buffer | undefined> {
    const local = await this.init.store.openRead(digest)
    if (local === undefined) return undefined
    try {
      return await local.read()
    } finally {
      await local.release()
    }
  }

  private fleetWarn (upstream: string, message: string): void {
    const last = this.fleetWarnedAt.get(upstream) ?? 0
    if (this.clock.now() - last < FLEET_WARN_INTERVAL_MS) return
    this.fleetWarnedAt.set(upstream, this.clock.now())
    this.init.log.warn({ upstream }, message)
  }
}

/**
 * The swarm key of a record, if it has one. A key peers refuse (a path or Accept longer than
 * the fetch protocol takes, 400 and 200 characters; an upstream name over 64) or that does not
 * name the record again when a peer parses it (a `#` in the Accept) would be announced and
 * asked for in vain: such a record is neither announced nor looked up (it stays this node's own).
 */
function swarmKey (resource: string, accept: string): ApiKey | undefined {
  const key = apiKey(resource, accept)
  const parsed = isApiKey(key) ? parseApiKey(key) : undefined
  return parsed?.resource === resource && parsed.accept === normalizeAccept(accept) ? key : undefined
}

/** Anonymous copies, the fleet's, and ones the server marked `public` are given without asking upstream while fresh. */
function shareableWithoutAsking (record: ApiRecord, scope: string): boolean {
  return scope === 'anon' || scope === FLEET_SCOPE || /\bpublic\b/.test(record.headers['cache-control'] ?? '')
}

/** Request headers that are part of every record's key (or never forwarded): a Vary on them always matches. */
const KEYED = new Set(['accept', 'authorization', 'accept-encoding'])

/** Whether a response's `Vary` names only KEYED headers (or is absent). */
function varyInKey (vary: string | undefined): boolean {
  return vary === undefined || vary.split(',').every(name => KEYED.has(name.trim().toLowerCase()))
}

/**
 * A stored copy's headers as a HIT sends them: `Age` as of now (RFC 9111 5.1, computed once per
 * second and kept with a hot entry), no `X-RateLimit-*`.
 */
function hitHeaders (stored: { policy: CachePolicy, hitHeaders?: { second: number, headers: HeaderMap } }, clock: Clock): HeaderMap {
  const second = Math.floor(clock.now() / 1000)
  if (stored.hitHeaders?.second === second) return stored.hitHeaders.headers
  const headers = withoutRateLimit(stored.policy.responseHeaders() as HeaderMap)
  stored.hitHeaders = { second, headers }
  return headers
}

/**
 * The conditional headers a stored response allows: its ETag when `ownEtag` (the credential
 * about to be sent received it), else its Last-Modified; none: it can't be revalidated.
 */
function conditionalHeaders (headers: HeaderMap, ownEtag: boolean): HeaderMap | undefined {
  if (ownEtag && headers.etag !== undefined) return { 'if-none-match': headers.etag }
  if (headers['last-modified'] !== undefined) return { 'if-modified-since': headers['last-modified'] }
  return undefined
}

/**
 * CachePolicy whose ages and freshness are computed on `clock` (http-cache-semantics reads the
 * time through its `now()` method, also from its constructor: hence a class per clock, not a field).
 */
export function policyOn (clock: Clock): typeof CachePolicy {
  if (clock === systemClock) return CachePolicy
  return class ClockedPolicy extends CachePolicy {
    now (): number {
      return clock.now()
    }
  }
}
