/**
 * Who served what, from the sidecars' own logs (pino JSON lines, one per record). The resolver
 * logs one record per object it serves:
 *   'blob hit' / 'manifest hit'           {digest, size, cache: 'HIT'}          → the local store
 *   'blob stored'                         {digest, size, cache, source}          → MISS: upstream,
 *                                                                                   PEER: source = peer id
 *   'manifest stored'                     {digest, size, cache: 'MISS', upstream} or {cache: 'PEER', peer}
 * ('blob stored' is written once the verified copy is committed, which can be just after the
 * client has its last byte.) The announcer logs 'announced' {key} at debug level once a key is
 * provided on the DHT.
 */

export type Origin =
  | { kind: 'local' }
  | { kind: 'upstream', name: string }
  | { kind: 'peer', peerId: string }

export interface Served {
  digest: string
  size: number
  origin: Origin
}

interface LogRecord {
  msg?: unknown
  digest?: unknown
  size?: unknown
  cache?: unknown
  source?: unknown
  upstream?: unknown
  peer?: unknown
  key?: unknown
}

function parse (line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const rec: unknown = JSON.parse(line)
    return typeof rec === 'object' && rec !== null ? rec as LogRecord : undefined
  } catch {
    return undefined
  }
}

const str = (x: unknown): string | undefined => typeof x === 'string' ? x : undefined

/** The serve record of one log line, if it is one. */
export function servedFrom (line: string): Served | undefined {
  const rec = parse(line)
  if (rec === undefined) return undefined
  const digest = str(rec.digest)
  const size = typeof rec.size === 'number' ? rec.size : undefined
  if (digest === undefined || size === undefined) return undefined
  switch (rec.msg) {
    case 'blob hit':
    case 'manifest hit':
      return { digest, size, origin: { kind: 'local' } }
    case 'blob stored':
    case 'manifest stored': {
      const from = str(rec.source) ?? str(rec.peer) ?? str(rec.upstream) ?? '?'
      return { digest, size, origin: rec.cache === 'PEER' ? { kind: 'peer', peerId: from } : { kind: 'upstream', name: from } }
    }
    default:
      return undefined
  }
}

/** The first serve record of each of `digests` in `lines`; digests not served yet are absent. */
export function servedIn (lines: readonly string[], digests: readonly string[]): Map<string, Served> {
  const wanted = new Set(digests)
  const out = new Map<string, Served>()
  for (const line of lines) {
    const s = servedFrom(line)
    if (s !== undefined && wanted.has(s.digest) && !out.has(s.digest)) out.set(s.digest, s)
  }
  return out
}

/** Keys the node logged as provided on the DHT. */
export function announcedIn (lines: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const line of lines) {
    const rec = parse(line)
    const key = str(rec?.key)
    if (rec?.msg === 'announced' && key !== undefined) out.add(key)
  }
  return out
}
