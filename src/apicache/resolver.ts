import type { Logger } from 'pino'
import type { AbortOptions } from '@libp2p/interface'
import type { StoreReader, StoreWriter } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import type { Digest } from '../oci/digest.js'
import { normalizeAccept } from '../keys/api-key.js'
import type { PeerLookupInit } from '../resolver/peer-lookup.js'
import { SingleFlight } from '../resolver/single-flight.js'
import type { ApiUpstreams } from '../upstream/api-client.js'
import type { FleetCredential } from '../upstream/fleet-credential.js'
import { systemClock, type Clock } from '../clock/clock.js'
import type { ApiRecords } from './records.js'
import type { Scopes } from './scope.js'
import { AccessPolicy } from './access-policy.js'
import { CacheSemantics } from './cache-semantics.js'
import { CandidateSearch } from './candidate-search.js'
import { ClientPath } from './client-path.js'
import { FleetPath, FleetUnusable } from './fleet-path.js'
import { ApiPeers } from './peers.js'
import { ResponseCache } from './response-cache.js'
import { SharedBody } from './shared-body.js'
import { discardAnswer, type ApiCacheAnswer, type ApiRequest } from './answer.js'
import { FLEET_SCOPE, VISIBILITY_ACCEPT } from './constants.js'

export interface ApiResolverInit {
  client: ApiUpstreams
  store: Pick<StoreReader, 'stat' | 'openRead'> & Pick<StoreWriter, 'put'>
  records: ApiRecords
  scopes: Scopes
  /** Fleet credentials by API upstream name (CACHE_API_AUTH, CACHE_API_APP). */
  fleet: Map<string, FleetCredential>
  stats: Stats
  /** Largest body stored, in bytes (CACHE_API_MAX_BODY); a longer one is streamed through. */
  maxBody: number
  /** The swarm, when CACHE_ENABLE_P2P is on: a record a peer holds can be revalidated here. */
  peers?: PeerLookupInit | undefined
  log: Logger
  /** Freshness, ages and expiry are computed on it (default: the system clock). */
  clock?: Clock
}

/** A request in flight, shared by every caller that joined it. */
interface Flight {
  answer: Promise<ApiCacheAnswer>
  /** Callers that joined: each takes a reader of a streamed body (SharedBody). */
  sharers: number
  /** The answer's body when it is streamed. */
  shared?: SharedBody
}

/**
 * Local → peers → upstream for API GETs, with RFC 9111 semantics. It coordinates:
 * - AccessPolicy: whose copy a request is answered from (docs/design.md §3.3);
 * - FleetPath: the fleet credential's copies, fetched and revalidated with it;
 * - ClientPath: the client's own scope's copies, revalidated with its own credential;
 * - ResponseCache and CacheSemantics: stored responses and when they answer without asking;
 * - CandidateSearch and ApiPeers: another scope's or a peer's copy to revalidate.
 * Concurrent identical requests share one upstream request (per scope, or per fleet); a body
 * too large to store is streamed to each of them.
 */
export class ApiResolver {
  private readonly inflight = new SingleFlight<string, Flight>()
  private readonly policy: AccessPolicy
  private readonly semantics: CacheSemantics
  private readonly responses: ResponseCache
  private readonly fleetPath: FleetPath
  private readonly clientPath: ClientPath

  constructor (init: ApiResolverInit) {
    const clock = init.clock ?? systemClock
    const { client, records, maxBody } = init
    this.policy = new AccessPolicy({ scopes: init.scopes, fleet: init.fleet, clock })
    this.semantics = new CacheSemantics({ clock })
    const peers = new ApiPeers({ peers: init.peers, maxBody })
    this.responses = new ResponseCache({
      store: init.store,
      records,
      stats: init.stats,
      semantics: this.semantics,
      swarm: peers,
      maxBody,
      clock
    })
    const candidates = new CandidateSearch({ records, bodies: this.responses, peers })
    const paths = { client, responses: this.responses, candidates, semantics: this.semantics, maxBody }
    this.fleetPath = new FleetPath({ ...paths, access: this.policy, log: init.log, clock })
    this.clientPath = new ClientPath(paths)
  }

  /**
   * The answer to `req` when a fresh copy this client may have is in memory: a HIT with no I/O,
   * no coalescing and no signal (the hot path). Undefined: ask `get`.
   */
  hit (req: ApiRequest): ApiCacheAnswer | undefined {
    const d = this.policy.decide(req)
    if (d.via === 'unknown') return undefined
    const scope = d.via === 'fleet' ? FLEET_SCOPE : d.scope
    const hot = this.responses.inMemory(d.resource, scope, d.accept)
    if (hot === undefined || !this.semantics.servableFromMemory(hot, scope, req)) return undefined
    return this.semantics.hit(hot)
  }

  /**
   * The answer to `req`. `options.signal`: this caller left; the upstream request stops when
   * every caller sharing it has. A streamed body (see ApiCacheAnswer.body) is the caller's to
   * read or destroy.
   * @throws undici errors when the upstream can't be reached, AbortError
   */
  async get (req: ApiRequest, options: AbortOptions = {}): Promise<ApiCacheAnswer> {
    let d = this.policy.decide(req)
    if (d.via === 'unknown' && d.fleet !== undefined && d.target.repo !== undefined) {
      try {
        await this.learnVisibility(req, d.fleet, d.target.repo, options)
        d = this.policy.decide(req)
      } catch (err) {
        if (!(err instanceof FleetUnusable)) throw err
      }
    }
    if (d.via === 'fleet' && d.fleet !== undefined) {
      const fleet = d.fleet
      try {
        return await this.coalesced(
          `${d.resource}\0${FLEET_SCOPE}\0${d.accept}`,
          async o => await this.fleetPath.answer(req, fleet, o),
          options
        )
      } catch (err) {
        if (!(err instanceof FleetUnusable)) throw err
      }
    }
    const { scope, target } = d
    const answer = await this.coalesced(
      `${d.resource}\0${scope}\0${d.accept}`,
      async o => await this.clientPath.answer(req, scope, target.shared, o),
      options
    )
    this.policy.clientAnswered(d, answer)
    return answer
  }

  /**
   * A body left the blob store: the records it held up are dropped and withdrawn from the DHT.
   * @throws the index's errors; AbortError
   */
  async forgetBody (digest: Digest, options: AbortOptions = {}): Promise<void> {
    await this.responses.forgetBody(digest, options)
  }

  /** `anon`, `fleet`, or the first 12 characters of the credential's scope: a metrics label. */
  credentialLabel (upstream: string, authorization: string | undefined): string {
    return this.policy.credentialLabel(upstream, authorization)
  }

  /**
   * `run` once for every concurrent caller with `key`; it gets a signal that aborts when every
   * one of them left. Each caller gets its own reader of a streamed body.
   */
  private async coalesced (
    key: string,
    run: (options: AbortOptions) => Promise<ApiCacheAnswer>,
    options: AbortOptions
  ): Promise<ApiCacheAnswer> {
    const share = this.inflight.join(key, signal => {
      const flight: Flight = { sharers: 0, answer: run({ signal }) }
      flight.answer = flight.answer.then(answer => {
        // Every caller of this flight has joined by now (it leaves the map as its answer
        // settles, before any caller resumes): each takes its reader when it resumes.
        if (!Buffer.isBuffer(answer.body)) flight.shared = new SharedBody(answer.body)
        return answer
      })
      return { value: flight, done: flight.answer }
    }, options)
    const flight = share.value
    flight.sharers++
    try {
      const answer = await flight.answer
      return flight.shared === undefined ? answer : { ...answer, body: flight.shared.reader(flight.sharers) }
    } finally {
      share.release()
    }
  }

  /**
   * Learns what the fleet credential sees of `repo` by fetching the repository with it (with the
   * client's Accept, so the record serves the client's own GET of the repository too; a free 304
   * after the first time). FleetPath reports it to the policy.
   * @throws FleetUnusable, undici errors, AbortError
   */
  private async learnVisibility (req: ApiRequest, fleet: FleetCredential, repo: string, options: AbortOptions): Promise<void> {
    const { upstream } = req
    const path = `/repos/${repo}`
    const accept = req.headers.accept ?? VISIBILITY_ACCEPT
    const probe: ApiRequest = { upstream, path, headers: { accept } }
    const answer = await this.coalesced(
      `${upstream.name} ${path}\0${FLEET_SCOPE}\0${normalizeAccept(accept)}`,
      async o => await this.fleetPath.answer(probe, fleet, o),
      options
    )
    discardAnswer(answer)
    // A repository answered with neither (a redirect, an error body) is not shared.
    this.policy.learnedNothing(upstream.name, repo)
  }
}
