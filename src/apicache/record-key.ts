/**
 * The swarm-wide name of a cached API response: upstream, path and query, and the `Accept`
 * it was negotiated for — never the credential. `api:<upstream> <path?query>#<accept>`.
 */
export type ApiKey = `api:${string}`

const API_KEY = /^api:[A-Za-z0-9._-]{1,64} \/[^\s#]{0,400}#[^\s]{0,200}$/

export function apiKey (resource: string, accept: string): ApiKey {
  return `api:${resource}#${normalizeAccept(accept)}`
}

export function normalizeAccept (accept: string | undefined): string {
  return (accept ?? '').replace(/\s+/g, '')
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
