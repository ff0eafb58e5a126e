import { systemClock, type Clock } from '../clock/clock.js'
import { ACCESS_MAX_ENTRIES, ACCESS_PROOF_TTL_MS, HIDDEN_TTL_MS, VISIBILITY_TTL_MS } from './constants.js'

/**
 * A repository as the fleet credential sees it: `public`, `private`, or `hidden` (the fleet
 * credential can't read it: another organisation, or the credential lacks the grant).
 */
export type Visibility = 'public' | 'private' | 'hidden'

/** A map whose entries expire, bounded (oldest first out). */
class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V, until: number }>()

  constructor (private readonly ttlMs: number, private readonly max: number, private readonly clock: Clock) {}

  get (key: string): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (this.clock.now() < entry.until) return entry.value
    this.entries.delete(key)
    return undefined
  }

  set (key: string, value: V, ttlMs = this.ttlMs): void {
    this.entries.delete(key)
    this.entries.set(key, { value, until: this.clock.now() + ttlMs })
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string)
  }
}

/**
 * Who may be given a stored response of a repository: what the fleet credential learned of
 * each repository's visibility, and which client credentials (by scope) proved read access to
 * an area of a private one with a request of their own that the upstream answered 2xx or 304.
 */
export class RepositoryAccess {
  private readonly visibilities: ExpiringMap<Visibility>
  private readonly proofs: ExpiringMap<true>

  /** `clock`: what the TTLs of visibilities and proofs count on (default: the system clock). */
  constructor (clock: Clock = systemClock) {
    this.visibilities = new ExpiringMap<Visibility>(VISIBILITY_TTL_MS, ACCESS_MAX_ENTRIES, clock)
    this.proofs = new ExpiringMap<true>(ACCESS_PROOF_TTL_MS, ACCESS_MAX_ENTRIES, clock)
  }

  /** Undefined: not known (or no longer believed); learn it with the fleet credential. */
  visibility (upstream: string, repo: string): Visibility | undefined {
    return this.visibilities.get(`${upstream} ${repo}`)
  }

  learn (upstream: string, repo: string, visibility: Visibility): void {
    // A 404 can't be revalidated for free: asking again for a hidden repository costs a unit.
    this.visibilities.set(`${upstream} ${repo}`, visibility, visibility === 'hidden' ? HIDDEN_TTL_MS : VISIBILITY_TTL_MS)
  }

  /** Access to `section` also proves the repository itself (`''`): every grant includes metadata. */
  prove (scope: string, upstream: string, repo: string, section: string): void {
    this.proofs.set(`${scope} ${upstream} ${repo} ${section}`, true)
    if (section !== '') this.proofs.set(`${scope} ${upstream} ${repo} `, true)
  }

  proven (scope: string, upstream: string, repo: string, section: string): boolean {
    return this.proofs.get(`${scope} ${upstream} ${repo} ${section}`) === true
  }
}

/** A repository's visibility from its `GET /repos/{owner}/{repo}` answer (status and JSON body). */
export function visibilityOf (status: number, body: Buffer): Visibility {
  if (status !== 200) return 'hidden'
  try {
    const repo = JSON.parse(body.toString('utf8')) as { private?: unknown, visibility?: unknown }
    if (repo.private === false || repo.visibility === 'public') return 'public'
    if (repo.private === true) return 'private'
  } catch {}
  return 'hidden'
}
