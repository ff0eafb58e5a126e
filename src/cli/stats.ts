import { request } from 'undici'
import type { StatsSnapshot } from '../metrics/stats.js'
import { localSidecarUrl } from './sidecar-url.js'
import { formatStats } from './stats-format.js'

export class SidecarUnreachableError extends Error {
  constructor (url: string, cause: unknown) {
    super(`cannot reach a sidecar at ${url} (${(cause as Error).message}); is \`p2p-cache serve\` running? Pass --url or set CACHE_HTTP_ADDR`, { cause })
    this.name = 'SidecarUnreachableError'
  }
}

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
  process.stdout.write(formatStats(base, stats))
}
