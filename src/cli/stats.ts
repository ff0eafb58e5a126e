import type { StatsSnapshot } from '../metrics/stats.js'
import { SidecarClient } from '../admin/client/client.js'
import { SidecarUnreachableError } from '../admin/client/errors.js'
import { localSidecarUrl } from './sidecar-url.js'
import { formatStats } from './stats-format.js'

/**
 * `p2p-cache stats`: a running sidecar's counters, for a person or (`json`) as it sent them.
 * @throws SidecarUnreachableError (exit 2) for any failure to get them: an answer that is not
 * the stats means no sidecar is there either
 */
export async function statsCommand (opts: { url?: string, json?: boolean }): Promise<void> {
  const base = opts.url ?? localSidecarUrl()
  let stats: StatsSnapshot
  try {
    stats = await new SidecarClient(base).stats()
  } catch (err) {
    throw err instanceof SidecarUnreachableError ? err : new SidecarUnreachableError(base, err)
  }
  if (opts.json === true) {
    process.stdout.write(JSON.stringify(stats, null, 2) + '\n')
    return
  }
  process.stdout.write(formatStats(base, stats))
}
