import { z } from 'zod'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/** One scope of the runtime token's `ac` claim: a ref, and 1 = read, 2 = write, 3 = both. */
export interface CacheScope {
  scope: string
  permission: number
}

export interface RuntimeToken {
  /** Scopes in the token's order: the job's ref first, then the refs it may read (base, default branch). */
  scopes: CacheScope[]
  /** The repository, when the token names one (`repository_id`); undefined: fleet-wide. */
  repository: string | undefined
}

/** The request has no usable runtime token: answered 401 (Twirp `unauthenticated`). */
export class RuntimeTokenError extends P2pCacheError {
  constructor (message: string) {
    super(message, { httpStatus: 401 })
  }
}

const acSchema = z.array(z.object({ Scope: z.string().max(1000), Permission: z.number().int().min(0).max(3) })).max(64)

/**
 * The claims of ACTIONS_RUNTIME_TOKEN (`Authorization: Bearer <JWT>`) the cache needs: `ac`, a
 * JSON string listing `{Scope, Permission}` (what go-actions-cache and the runner use), and a
 * `repository_id` when present. The signature is not checked: the sidecar has no key to check it
 * with; runners of one fleet trust each other as on a shared disk. `exp` is honoured.
 * @throws RuntimeTokenError naming what is wrong
 */
export function parseRuntimeToken (authorization: string | undefined, now = Date.now()): RuntimeToken {
  const m = /^Bearer\s+([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)$/.exec(authorization ?? '')
  if (m === null) throw new RuntimeTokenError('no runtime token: send Authorization: Bearer <ACTIONS_RUNTIME_TOKEN> (a JWT)')
  let claims: { ac?: unknown, exp?: unknown, repository_id?: unknown }
  try {
    claims = JSON.parse(Buffer.from(m[2] as string, 'base64url').toString('utf8')) as typeof claims
  } catch {
    throw new RuntimeTokenError("the runtime token's payload is not JSON")
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 < now) throw new RuntimeTokenError('the runtime token has expired (exp)')
  let ac: unknown
  try {
    ac = typeof claims.ac === 'string' ? JSON.parse(claims.ac) : undefined
  } catch {
    ac = undefined
  }
  const parsed = acSchema.safeParse(ac)
  if (!parsed.success) throw new RuntimeTokenError('the runtime token has no `ac` claim listing the cache scopes ({Scope, Permission})')
  const repository = typeof claims.repository_id === 'string' || typeof claims.repository_id === 'number'
    ? String(claims.repository_id)
    : undefined
  return { scopes: parsed.data.map(s => ({ scope: s.Scope, permission: s.Permission })), repository }
}

/** The scope a job writes to: the first one with the write bit; undefined when none has it. */
export function writeScope (token: RuntimeToken): string | undefined {
  return token.scopes.find(s => (s.permission & 2) !== 0)?.scope
}

/** The scopes a job reads, in the token's order. */
export function readScopes (token: RuntimeToken): string[] {
  return token.scopes.filter(s => (s.permission & 1) !== 0).map(s => s.scope)
}
