export interface Challenge {
  scheme: string
  params: Record<string, string>
}

/**
 * Parses `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` (RFC 7235 auth-params;
 * quoted values may contain commas, as multi-scope challenges do).
 */
export function parseChallenge (header: string | undefined): Challenge | undefined {
  if (header === undefined) return undefined
  const m = /^\s*([A-Za-z][A-Za-z0-9._-]*)\s*(.*)$/s.exec(header)
  if (m === null) return undefined
  const params: Record<string, string> = {}
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g
  for (const p of (m[2] ?? '').matchAll(re)) {
    params[(p[1] ?? '').toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '')
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params }
}
