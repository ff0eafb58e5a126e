import type { Logger } from 'pino'
import type { AbortOptions } from '@libp2p/interface'
import type { Clock } from '../clock/clock.js'
import { normalizeAccept } from '../keys/api-key.js'
import type { ApiUpstreams } from '../upstream/api-client.js'
import { FleetCredentialError, validatorIdentity, type FleetCredential } from '../upstream/fleet-credential.js'
import { withoutRateLimit } from './headers.js'
import { repositoryResource } from './github-resource.js'
import { conditionalHeaders, type CacheSemantics } from './cache-semantics.js'
import type { CandidateSearch } from './candidate-search.js'
import type { ResponseCache } from './response-cache.js'
import type { AccessPolicy } from './access-policy.js'
import { discardAnswer, resourceOf, type ApiCacheAnswer, type ApiRequest } from './answer.js'
import { FLEET_SCOPE, FLEET_WARN_INTERVAL_MS, VISIBILITY_MAX_BYTES } from './constants.js'

export interface FleetPathInit {
  client: Pick<ApiUpstreams, 'get'>
  responses: Pick<ResponseCache, 'stored' | 'revalidated' | 'fresh'>
  candidates: Pick<CandidateSearch, 'find'>
  semantics: Pick<CacheSemantics, 'policyRequest' | 'servable' | 'hit'>
  /** Told what the fleet credential got for each request: a repository's own resource says its visibility. */
  access: Pick<AccessPolicy, 'fleetAnswered'>
  /** Largest body stored, in bytes (CACHE_API_MAX_BODY): a longer one is streamed, not read whole. */
  maxBody: number
  log: Logger
  clock: Clock
}

/** The fleet credential could not be used for this request: the client's own is. */
export class FleetUnusable extends Error {}

/**
 * Requests answered with the fleet credential, under the `fleet` scope: the fleet's stored copy
 * while fresh, else revalidated (its own ETags are stable, so repeats are free 304s) or fetched
 * with it. Only what the fleet may read is answered: a refused or spent credential, or an
 * error status, is a FleetUnusable and the client's own credential is asked instead.
 */
export class FleetPath {
  private readonly log: Logger
  private readonly warnedAt = new Map<string, number>()

  constructor (private readonly init: FleetPathInit) {
    this.log = init.log.child({ via: 'fleet' })
  }

  /**
   * `req` answered from the fleet's copy, revalidated or fetched with `fleet` (the client's
   * credential is not sent). Its `X-RateLimit-*` are dropped: they are the fleet's bucket.
   * @throws FleetUnusable (the client's own credential is to be used), undici errors when the
   * upstream can't be reached, AbortError
   */
  async answer (req: ApiRequest, fleet: FleetCredential, options: AbortOptions = {}): Promise<ApiCacheAnswer> {
    const signal = options.signal ?? new AbortController().signal
    const { upstream, path } = req
    const resource = resourceOf(req)
    const accept = normalizeAccept(req.headers.accept)
    const { semantics, responses } = this.init
    const policyRequest = semantics.policyRequest(req, FLEET_SCOPE)
    const stored = await responses.stored(resource, FLEET_SCOPE, accept, options)
    if (stored !== undefined && semantics.servable(stored, FLEET_SCOPE, req)) {
      this.init.access.fleetAnswered(req, stored.record.status, stored.body)
      return semantics.hit(stored)
    }
    const authorization = await this.authorization(upstream.name, fleet, { signal })
    const identity = validatorIdentity(authorization)
    const headers = { ...req.headers }
    delete headers.authorization
    const candidate = await this.init.candidates.find(
      { resource, accept, scope: FLEET_SCOPE, identity, own: stored, shared: true },
      options
    )
    const conditional = candidate === undefined ? undefined : conditionalHeaders(candidate.headers, candidate.ownEtag)
    // A repository's own resource is read whole even above the bound: its visibility is in it.
    const maxBytes = repositoryResource(path) === undefined ? this.init.maxBody : Math.max(this.init.maxBody, VISIBILITY_MAX_BYTES)
    const res = await this.init.client.get(upstream, path, { ...headers, authorization, ...conditional }, { signal, maxBytes })
    if (res.status === 401 || (res.status === 403 && res.headers['x-ratelimit-remaining'] === '0')) {
      discardAnswer(res)
      if (res.status === 401) fleet.rejected(authorization)
      const reason = `the fleet credential got ${res.status} from ${upstream.name}${
        res.status === 401 ? ' (revoked or expired? check CACHE_API_AUTH / CACHE_API_APP)' : ' (its rate limit is spent)'
      }; clients' own credentials are used meanwhile`
      this.warn(upstream.name, reason)
      throw new FleetUnusable(reason)
    }
    if (res.status === 304 && candidate !== undefined && conditional !== undefined) {
      const answer = await responses.revalidated(resource, FLEET_SCOPE, policyRequest, candidate, res, identity, options)
      this.init.access.fleetAnswered(req, answer.status, answer.body)
      return { ...answer, headers: withoutRateLimit(answer.headers) }
    }
    if (res.status < 200 || res.status >= 300) {
      // Only what the fleet may read is shared: its 403/404 says nothing of what the client may
      // (an admin's token reads a repository's hooks where a read-only fleet token can't).
      this.init.access.fleetAnswered(req, res.status, res.body)
      discardAnswer(res)
      throw new FleetUnusable(`the fleet credential got ${res.status}`)
    }
    const answer = await responses.fresh(resource, FLEET_SCOPE, policyRequest, res, identity, options)
    this.init.access.fleetAnswered(req, answer.status, answer.body)
    return { ...answer, headers: withoutRateLimit(answer.headers) }
  }

  /**
   * The fleet credential's `Authorization` (a GitHub App mints an installation token).
   * @throws FleetUnusable when it can't be had (reported), AbortError
   */
  private async authorization (upstream: string, fleet: FleetCredential, options: AbortOptions = {}): Promise<string> {
    try {
      return await fleet.authorization(options)
    } catch (err) {
      if (!(err instanceof FleetCredentialError)) throw err
      this.warn(upstream, err.message)
      throw new FleetUnusable(err.message)
    }
  }

  /** Logs a failing fleet credential at most once per FLEET_WARN_INTERVAL_MS per upstream. */
  private warn (upstream: string, message: string): void {
    const now = this.init.clock.now()
    const last = this.warnedAt.get(upstream) ?? 0
    if (now - last < FLEET_WARN_INTERVAL_MS) return
    this.warnedAt.set(upstream, now)
    this.log.warn({ upstream }, message)
  }
}
