import { request } from 'undici'
import type { Upstream } from '../upstream/upstream.js'
import { FleetCredentialError, type FleetCredential } from '../upstream/fleet-credential.js'
import { ok, warn, type Finding } from './finding.js'
import { HTTP_TIMEOUT_MS, MAX_ANSWER_BYTES } from './constants.js'
import { readJsonBounded } from '../io/bounded-body.js'

/** Below this share of its limit left, the fleet credential's bucket is reported as nearly spent. */
const LOW_RATE_LIMIT = 0.1

/**
 * Each API upstream's fleet credential (CACHE_API_AUTH, CACHE_API_APP) is accepted: a GitHub
 * App mints a token, and `GET /rate_limit` (free on GitHub) answers 200 with it. The credential
 * itself is never part of a finding.
 */
export async function checkFleetCredentials (apis: Upstream[], fleet: Map<string, FleetCredential>): Promise<Finding[]> {
  const findings: Array<Promise<Finding>> = []
  for (const upstream of apis) {
    const credential = fleet.get(upstream.name)
    if (credential !== undefined) findings.push(checkOne(upstream, credential))
  }
  return await Promise.all(findings)
}

async function checkOne (upstream: Upstream, credential: FleetCredential): Promise<Finding> {
  const check = 'upstream.api.fleet'
  const variable = credential.kind === 'token' ? 'CACHE_API_AUTH' : 'CACHE_API_APP'
  const url = `${upstream.url.href.replace(/\/+$/, '')}/rate_limit`
  let authorization: string
  try {
    authorization = await credential.authorization({ signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
  } catch (err) {
    const reason = err instanceof FleetCredentialError ? err.message : (err as Error).message
    return warn(check, `${reason}; clients' own credentials are used meanwhile`, `correct ${variable} for ${upstream.name}`, {
      kind: credential.kind
    }, upstream.name)
  }
  let status: number
  let body: unknown
  try {
    const res = await request(url, {
      headers: { authorization, accept: 'application/vnd.github+json', 'user-agent': 'p2p-cache-diagnose' },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS)
    })
    status = res.statusCode
    body = await readJsonBounded(res.body, MAX_ANSWER_BYTES).catch(() => undefined)
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    return warn(
      check,
      `could not ask ${upstream.name} about the fleet credential (${reason})`,
      'see upstream.api',
      { url, error: reason },
      upstream.name
    )
  }
  const facts = { kind: credential.kind, url, status }
  if (status === 401) {
    return warn(
      check,
      `${upstream.name} refuses the fleet credential (401: revoked, expired or mistyped); shared responses are revalidated with clients' own credentials meanwhile`,
      `replace the token in ${variable} for ${upstream.name}`,
      facts,
      upstream.name
    )
  }
  if (status !== 200) {
    return warn(
      check,
      `${upstream.name} answered ${status} to GET /rate_limit with the fleet credential`,
      `check that ${variable} for ${upstream.name} is a credential of this API`,
      facts,
      upstream.name
    )
  }
  const core = (body as { resources?: { core?: { limit?: unknown, remaining?: unknown } } } | undefined)?.resources?.core
  const limit = typeof core?.limit === 'number' ? core.limit : undefined
  const remaining = typeof core?.remaining === 'number' ? core.remaining : undefined
  const left = limit !== undefined && remaining !== undefined ? ` (${remaining} of ${limit} requests left this hour)` : ''
  if (limit !== undefined && remaining !== undefined && remaining < limit * LOW_RATE_LIMIT) {
    return warn(
      check,
      `the fleet credential for ${upstream.name} is accepted but nearly spent${left}: once it is, clients' own credentials are used`,
      `give ${upstream.name} a fleet credential of its own (a token used by nothing else, or a GitHub App in CACHE_API_APP)`,
      { ...facts, limit, remaining },
      upstream.name
    )
  }
  return ok(
    check,
    `${upstream.name} accepts the fleet credential (${credential.kind === 'token' ? 'token' : 'GitHub App installation token'})${left}`,
    { ...facts, limit, remaining },
    upstream.name
  )
}
