import type { IncomingHttpHeaders } from 'node:http'

/** RFC 9110 7.6.1: meaningful for one connection only, never forwarded or stored. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade'
])

export type HeaderMap = Record<string, string>

/** One string per header (multi-valued joined), hop-by-hop ones and those named in `Connection` dropped. */
export function endToEnd (
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  drop: readonly string[] = []
): HeaderMap {
  const connection = headers.connection
  const named = connection === undefined ? undefined : String(connection).toLowerCase().split(',').map(s => s.trim()).filter(Boolean)
  const out: HeaderMap = {}
  // for...in, not Object.entries: this runs for every request, and allocates only `out`.
  for (const name in headers) {
    const value = headers[name]
    const key = name.toLowerCase()
    if (value === undefined || HOP_BY_HOP.has(key) || named?.includes(key) === true || drop.includes(key)) continue
    out[key] = Array.isArray(value) ? value.join(key === 'set-cookie' ? '\n' : ', ') : value
  }
  return out
}

/**
 * Absolute URLs that point at the upstream (pagination `Link`, redirect `Location`) are
 * rewritten to go through the sidecar, so a client that follows them stays on the cache.
 */
export function rewriteUpstreamUrls (value: string, upstreamBase: string, sidecarBase: string): string {
  return value.split(upstreamBase).join(sidecarBase)
}

/**
 * RFC 9110 13.1.2: whether an `If-None-Match` value matches `etag`, by weak comparison
 * (`"x"` matches `W/"x"`); a list or `*` as the field allows.
 */
export function ifNoneMatchMatches (header: string, etag: string): boolean {
  if (header.trim() === '*') return true
  const opaque = (tag: string): string => tag.trim().replace(/^W\//, '')
  const wanted = opaque(etag)
  return header.split(',').some(tag => opaque(tag) === wanted)
}

/**
 * Without `X-RateLimit-*`: those describe the bucket of the credential that made the upstream
 * request, not the client that gets a stored or fleet-fetched answer.
 */
export function withoutRateLimit (headers: HeaderMap): HeaderMap {
  const out: HeaderMap = {}
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith('x-ratelimit-')) out[name] = value
  return out
}
