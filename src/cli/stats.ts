import { request } from 'undici'
import { formatBytes } from '../config/units.js'
import type { StatsSnapshot } from '../metrics/stats.js'
import { localSidecarUrl } from './sidecar-url.js'

export class SidecarUnreachableError extends Error {
  constructor (url: string, cause: unknown) {
    super(`cannot reach a sidecar at ${url} (${(cause as Error).message}); is \`p2p-cache serve\` running? Pass --url or set CACHE_HTTP_ADDR`, { cause })
    this.name = 'SidecarUnreachableError'
  }
}

const BYTE_FIELDS = new Set(['current_size', 'bytes_from_peers', 'bytes_from_upstream', 'bytes_served_to_peers', 'bytes_served'])

export async function statsCommand (opts: { url?: string, json?: boolean }): Promise<void> {
  const base = opts.url ?? localSidecarUrl()
  let stats: StatsSnapshot
  try {
    const res = await request(new URL('/api/cache/stats', base), { signal: AbortSignal.timeout(5_000) })
    stats = await res.body.json() as StatsSnapshot
  } catch (err) {
    throw new SidecarUnreachableError(base, err)
  }
  if (opts.json === true) {
    process.stdout.write(JSON.stringify(stats, null, 2) + '\n')
    return
  }
  const rows = Object.entries(stats).map(([k, v]): [string, string] => [k,
    typeof v === 'object' ? Object.entries(v).map(([name, n]) => `${name}=${n}`).join(', ') || '-'
      : BYTE_FIELDS.has(k) ? formatBytes(v) : k === 'hit_rate' ? `${(v * 100).toFixed(1)}%` : String(v)])
  const width = Math.max(...rows.map(r => (r[0] ?? '').length))
  process.stdout.write(`p2p-cache at ${base}\n` + rows.map(([k, v]) => `  ${(k ?? '').padEnd(width)}  ${v ?? ''}`).join('\n') + '\n')
}
