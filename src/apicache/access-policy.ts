import type { Readable } from 'node:stream'
import { normalizeAccept } from '../keys/api-key.js'
import type { Clock } from '../clock/clock.js'
import type { FleetCredential } from '../upstream/fleet-credential.js'
import type { Scopes } from './scope.js'
import { apiTarget, publicSection, repositoryResource, type ApiTarget } from './github-resource.js'
import { RepositoryAccess, visibilityOf } from './repository-access.js'
import { resourceOf, type ApiCacheAnswer, type ApiRequest } from './answer.js'
import { FLEET_SCOPE } from './constants.js'

export interface AccessPolicyInit {
  scopes: Scopes
  /** Fleet credentials by API upstream name (CACHE_API_AUTH, CACHE_API_APP). */
  fleet: Map<string, FleetCredential>
  /** What the TTLs of learned visibilities and proofs count on. */
  clock: Clock
}

/** Whose copy a request is answered from: see AccessPolicy.decide. */
export interface Decision {
  /** The upstream's name. */
  upstream: string
  /** The client credential's scope (`anon` or its keyed hash). */
  scope: string
  target: ApiTarget
  /** `<upstream> <path?query>`. */
  resource: string
  /** Normalized (the record key's). */
  accept: string
  /** The upstream's fleet credential, when it has one and the path is a repository's. */
  fleet?: FleetCredential
  via: 'fleet' | 'client' | 'unknown'
}

/**
 * Who may be given which stored response (docs/design.md §3.3). With a fleet credential for the upstream,
 * a repository's resources are answered from the fleet's copy when the repository is public
 * (the areas anyone may read) or when the client's own credential proved read access to that
 * area with a request of its own; otherwise each credential scope has its own copies. What the
 * fleet credential learns of a repository's visibility, and the clients' proofs, are kept here
 * for a while (RepositoryAccess).
 */
export class AccessPolicy {
  private readonly access: RepositoryAccess

  constructor (private readonly init: AccessPolicyInit) {
    this.access = new RepositoryAccess(init.clock)
  }

  /**
   * Whose copy `req` is answered from, decided without I/O: `fleet` (an area anyone may read of
   * a repository the fleet credential sees as public, or an area this client proved access to),
   * `client` (its own scope), or `unknown` (the repository's visibility is still to be learned).
   */
  decide (req: ApiRequest): Decision {
    const scope = this.init.scopes.of(req.headers.authorization)
    const target = apiTarget(req.path)
    const upstream = req.upstream.name
    const d: Decision = { upstream, scope, target, resource: resourceOf(req), accept: normalizeAccept(req.headers.accept), via: 'client' }
    const fleet = this.init.fleet.get(upstream)
    if (fleet === undefined || target.repo === undefined) return d
    d.fleet = fleet
    const visibility = this.access.visibility(upstream, target.repo)
    if (visibility === undefined) d.via = 'unknown'
    else if (
      (visibility === 'public' && publicSection(target.section)) ||
      (visibility !== 'hidden' && this.access.proven(scope, upstream, target.repo, target.section))
    ) d.via = 'fleet'
    return d
  }

  /**
   * The client's own credential got `answer` for `d` upstream: a 2xx (or a 304 that confirmed a
   * copy) proves it may read that area of the repository, and it may be served from the fleet's
   * copies of it for a while (ACCESS_PROOF_TTL_MS).
   */
  clientAnswered (d: Decision, answer: Pick<ApiCacheAnswer, 'cache' | 'status'>): void {
    const { repo, section } = d.target
    if (repo !== undefined && d.scope !== 'anon' && answer.cache !== 'HIT' && answer.status >= 200 && answer.status < 300) {
      this.access.prove(d.scope, d.upstream, repo, section)
    }
  }

  /**
   * The fleet credential got `status` and `body` for `req`: when `req` is a repository's own
   * resource, that says the repository's visibility (a streamed body, too large to read, says
   * nothing).
   */
  fleetAnswered (req: ApiRequest, status: number, body: Buffer | Readable): void {
    const repo = repositoryResource(req.path)
    if (repo === undefined || (status === 200 && !Buffer.isBuffer(body))) return
    this.access.learn(req.upstream.name, repo, visibilityOf(status, Buffer.isBuffer(body) ? body : Buffer.alloc(0)))
  }

  /** The fleet asked about `repo` and learned nothing (a redirect, an error body): it is not shared. */
  learnedNothing (upstream: string, repo: string): void {
    if (this.access.visibility(upstream, repo) === undefined) this.access.learn(upstream, repo, 'hidden')
  }

  /** `anon`, `fleet`, or the first 12 characters of the credential's scope: a metrics label. */
  credentialLabel (upstream: string, authorization: string | undefined): string {
    if (this.init.fleet.get(upstream)?.owns(authorization) === true) return FLEET_SCOPE
    const scope = this.init.scopes.of(authorization)
    return scope === 'anon' ? scope : scope.slice(0, 12)
  }
}
