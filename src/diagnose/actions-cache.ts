import type { Config } from '../config/options.js'
import { TWIRP_SERVICE } from '../actionscache/constants.js'
import { fail, ok, skip, warn, type Finding } from './finding.js'
import { request } from 'undici'
import { readJsonBounded } from '../io/bounded-body.js'
import { MAX_ANSWER_BYTES } from './constants.js'

/** How long the cache service may take to answer the check's lookup. */
const LOOKUP_TIMEOUT_MS = 3_000

/**
 * The Actions cache service (issue 26): the running sidecar answers a lookup (a miss, with a
 * token of no repository made for the check), and its entries reach other runners (a private
 * swarm). Skipped when no sidecar runs.
 */
export async function checkActionsCache (config: Config, httpUrl: string, stats: Record<string, unknown> | undefined): Promise<Finding[]> {
  if (stats === undefined) return [skip('actions-cache.service', 'no running sidecar answered: the Actions cache service is not checked')]
  const url = `${httpUrl}/twirp/${TWIRP_SERVICE}/GetCacheEntryDownloadURL`
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  const token = `${b64({ alg: 'none' })}.${
    b64({ ac: JSON.stringify([{ Scope: 'p2p-cache-diagnose', Permission: 1 }]), exp: Math.floor(Date.now() / 1000) + 60 })
  }.`
  const findings: Finding[] = []
  try {
    const r = await request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'p2p-cache-diagnose', version: '1' }),
      signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS)
    })
    const body = await readJsonBounded(r.body, MAX_ANSWER_BYTES).catch(() => undefined) as { ok?: unknown } | undefined
    if (r.statusCode !== 200 || typeof body?.ok !== 'boolean') {
      throw new Error(`answered ${r.statusCode} ${JSON.stringify(body ?? null).slice(0, 100)}`)
    }
    findings.push(ok('actions-cache.service', `the Actions cache service answers at ${httpUrl}/twirp/…`, { url }))
  } catch (err) {
    findings.push(
      fail(
        'actions-cache.service',
        `the Actions cache service at ${url} did not answer a lookup (${(err as Error).message})`,
        "run a sidecar of this version at CACHE_HTTP_ADDR, and point BuildKit's url_v2 (or ACTIONS_RESULTS_URL) at it",
        { url, error: (err as Error).message }
      )
    )
    return findings
  }
  const used = ['actions_cache_saves', 'actions_cache_hits', 'actions_cache_misses'].reduce(
    (n, k) => n + (typeof stats[k] === 'number' ? stats[k] : 0),
    0
  )
  if (used > 0 && config.swarmKey === undefined) {
    findings.push(
      warn(
        'actions-cache.shared',
        'jobs use the Actions cache, but its entries stay on the runner that saved them: they are shared only inside a private swarm',
        'give every runner the same CACHE_SWARM_KEY (`p2p-cache swarm-key`)',
        { lookups: used }
      )
    )
  }
  return findings
}
