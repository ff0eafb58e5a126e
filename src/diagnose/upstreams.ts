import { request } from 'undici'
import type { Upstream } from '../upstream/upstream.js'
import { ok, skip, warn, type Finding } from './finding.js'
import { CLOCK_SKEW_WARN_MS, HTTP_TIMEOUT_MS } from './constants.js'

/** A server's Date header, for the clock check. */
export interface ServerDate {
  /** The upstream's name. */
  server: string
  date: string
}

export interface UpstreamCheck {
  findings: Finding[]
  /** Date headers seen, for the clock check. */
  dates: ServerDate[]
}

/** Each upstream answers HTTP at all (any status: a registry's /v2/ says 401 without a token). */
export async function checkUpstreams (registries: Upstream[], apis: Upstream[]): Promise<UpstreamCheck> {
  const dates: ServerDate[] = []
  const probe = async (kind: 'registry' | 'api', upstream: Upstream): Promise<Finding> => {
    const url = kind === 'registry'
      ? new URL('v2/', upstream.url.href.endsWith('/') ? upstream.url : `${upstream.url.href}/`).href
      : upstream.url.href
    const subject = `${upstream.name}=${upstream.url.origin}${upstream.url.pathname.replace(/\/$/, '')}`
    const started = performance.now()
    try {
      const res = await request(url, { method: 'GET', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
      await res.body.dump()
      if (typeof res.headers.date === 'string') dates.push({ server: upstream.name, date: res.headers.date })
      return ok(
        `upstream.${kind}`,
        `${kind} upstream ${upstream.name} answers ${res.statusCode} in ${(performance.now() - started).toFixed(0)} ms`,
        { url, status: res.statusCode },
        subject
      )
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      const variable = kind === 'registry' ? 'CACHE_REGISTRY_UPSTREAMS' : 'CACHE_API_UPSTREAMS'
      return warn(
        `upstream.${kind}`,
        `${kind} upstream ${upstream.name} (${url}) is unreachable (${reason}): misses can only come from peers`,
        `let the sidecar reach it (egress, proxy, DNS), or correct ${variable}`,
        { url, error: reason },
        subject
      )
    }
  }
  const findings = await Promise.all([
    ...registries.map(async u => await probe('registry', u)),
    ...apis.map(async u => await probe('api', u))
  ])
  return { findings, dates }
}

/**
 * The clock against the upstreams' HTTP Date headers: skew breaks tokens and TLS. Only servers
 * on other hosts count: the running sidecar's Date comes from this host's own clock, so agreeing
 * with it proves nothing. With no Date header to compare with, the check is skipped and says so.
 */
export function checkClock (dates: ServerDate[]): Finding {
  const now = Date.now()
  const seen = dates.flatMap(d => {
    const t = Date.parse(d.date)
    return Number.isFinite(t) ? [{ server: d.server, skewMs: now - t }] : []
  })
  if (seen.length === 0) {
    return skip(
      'clock',
      `the clock could not be compared: no upstream answered with a valid Date header (see upstream.*); local time ${
        new Date(now).toISOString()
      }`
    )
  }
  const skews = seen.map(s => s.skewMs)
  const worst = skews.reduce((a, b) => Math.abs(b) > Math.abs(a) ? b : a)
  const servers = [...new Set(seen.map(s => s.server))]
  const facts = { localTime: new Date(now).toISOString(), skewMs: worst, servers }
  if (Math.abs(worst) > CLOCK_SKEW_WARN_MS) {
    return warn(
      'clock',
      `the clock is ${Math.round(Math.abs(worst) / 1000)} s ${worst > 0 ? 'ahead of' : 'behind'} the Date headers of ${
        servers.join(', ')
      }: registry tokens and TLS certificates may be rejected`,
      'sync the clock (NTP: `timedatectl set-ntp true` on the host)',
      facts
    )
  }
  return ok(
    'clock',
    `the clock agrees with the Date headers of ${servers.join(', ')} (within ${Math.round(Math.abs(worst) / 1000)} s)`,
    facts
  )
}
