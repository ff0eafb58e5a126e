import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import type { Stats } from '../metrics/stats.js'
import { cacheDateHeader } from './cache-date.js'
import { selectRange } from './range.js'

/** What sendBlob sends: where the bytes come from (X-Cache, X-Cache-Source, X-Cache-Date), the size, and bytes [start, end). */
export interface SendableBlob {
  cache: string
  origin: string
  /** A HIT: when this node stored the copy (ms since the epoch). */
  storedAt?: number
  size: number | undefined
  stream: (start: number, end: number | undefined) => Readable
}

/**
 * Answers a GET with `source`'s bytes: the whole blob (200), or the one range `rangeHeader` asks
 * for (206 with Content-Range; 416 when it can't be satisfied; RFC 9110 14), with `headers`, its
 * size, and X-Cache / X-Cache-Source (and X-Cache-Date on a HIT). `If-Range` applies against `etag`. Counts bytes_served.
 * Rejects when the client leaves or the source fails (the caller releases the source).
 */
export async function sendBlob (
  req: IncomingMessage,
  res: ServerResponse,
  source: SendableBlob,
  opts: { etag: string, headers: Record<string, string>, rangeHeader: string | undefined, stats: Pick<Stats, 'inc'> }
): Promise<void> {
  const range = selectRange(opts.rangeHeader, source.size, req.headers['if-range'] as string | undefined, opts.etag)
  const headers: Record<string, string | number> = {
    ...opts.headers,
    etag: opts.etag,
    'accept-ranges': 'bytes',
    'x-cache': source.cache,
    'x-cache-source': source.origin,
    ...cacheDateHeader(source.cache, source.storedAt)
  }
  if (range.kind === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'content-range': `bytes */${source.size ?? '*'}`, 'content-length': 0 })
    res.end()
    return
  }
  const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, source.size]
  if (end !== undefined) headers['content-length'] = end - start
  if (range.kind === 'partial') headers['content-range'] = `bytes ${start}-${end === undefined ? '' : end - 1}/${source.size ?? '*'}`
  res.writeHead(range.kind === 'partial' ? 206 : 200, headers)
  const body = source.stream(start, end)
  body.on('data', (chunk: Buffer) => opts.stats.inc('bytes_served', chunk.byteLength))
  await pipeline(body, res)
}
