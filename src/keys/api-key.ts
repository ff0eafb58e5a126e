// Swarm key types live under keys/ (not apicache/): p2p/ names them in its frames without
// importing the content modules that sit below it in the request flow.

/**
 * The swarm-wide name of a cached API response: upstream, path and query, and the `Accept`
 * it was negotiated for — never the credential. `api:<upstream> <path?query>#<accept>`.
 */
export type ApiKey = `api:${string}`

const API_KEY = /^api:[A-Za-z0-9._-]{1,64} \/[^\s#]{0,400}#[^\s]{0,200}$/

export function apiKey (resource: string, accept: string): ApiKey {
  return `api:${resource}#${normalizeAccept(accept)}`
}

/**
 * Accept values that ask for an upstream's default representation: none, `*\/*`, and GitHub's
 * own names for its default media type (docs.github.com "Media types": `application/vnd.github+json`
 * is recommended, `.v3+json` is what Octokit sends). Curl and Octokit then share one record.
 */
const DEFAULT_ACCEPT = new Set(['', '*/*', 'application/vnd.github+json', 'application/vnd.github.v3+json'])

/** The Accept part of a cache key: whitespace removed, the default representation's names as `''`. */
export function normalizeAccept (accept: string | undefined): string {
  const compact = (accept ?? '').replace(/\s+/g, '')
  return DEFAULT_ACCEPT.has(compact.toLowerCase()) ? '' : compact
}

export function isApiKey (key: string): key is ApiKey {
  return API_KEY.test(key)
}

/** The parts of a key: `resource` as ApiRecords keys it (`<upstream> <path?query>`), and the Accept. */
export function parseApiKey (key: ApiKey): { resource: string, accept: string } | undefined {
  const hash = key.lastIndexOf('#')
  if (!isApiKey(key) || hash < 0) return undefined
  return { resource: key.slice('api:'.length, hash), accept: key.slice(hash + 1) }
}
