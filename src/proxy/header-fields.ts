import type { IncomingHttpHeaders } from 'node:http'

/**
 * The fields `names` of `headers` (lower-case), one string each (repeated fields joined with
 * `, `): what the proxy relays of a request or an answer, nothing else (never cookies unless named).
 */
export function pickFields (
  headers: IncomingHttpHeaders | Record<string, string | undefined>,
  names: readonly string[]
): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of names) {
    const v = headers[name]
    if (typeof v === 'string') out[name] = v
    else if (Array.isArray(v) && v.length > 0) out[name] = v.join(', ')
  }
  return out
}
