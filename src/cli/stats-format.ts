import { formatBytes } from '../config/units.js'
import type { StatsSnapshot } from '../metrics/stats.js'

// The rendering of `p2p-cache stats` (the fetching is in stats.ts): no HTTP client here.

type Section = [title: string, rows: Array<[label: string, value: string]>]

const count = (n: number): string => n.toLocaleString('en-US')
const plural = (n: number, one: string, many = `${one}s`): string => `${count(n)} ${n === 1 ? one : many}`

/** `docker.io 76 of 100 per 6 h`, per upstream that stated one; `–` when none has. */
function formatRegistryLimits (limits: StatsSnapshot['registry_ratelimit']): string {
  const parts = Object.entries(limits).map(([name, l]) =>
    `${name} ${count(l.remaining)}${l.limit !== undefined ? ` of ${count(l.limit)}` : ''}${
      l.window_s !== undefined ? ` per ${l.window_s % 3600 === 0 ? `${l.window_s / 3600} h` : `${l.window_s} s`}` : ''
    }`
  )
  return parts.length === 0 ? '–' : parts.join(', ')
}

/** `fleet 4,990, anon 59, 3 client tokens (lowest 4,997)`: the fleet and anonymous buckets by name, clients' summed up. */
function formatRateLimits (byCredential: Record<string, number>): string {
  const parts: string[] = []
  for (const name of ['fleet', 'anon']) {
    const n = byCredential[name]
    if (n !== undefined) parts.push(`${name} ${count(n)}`)
  }
  const clients = Object.entries(byCredential).filter(([name]) => name !== 'fleet' && name !== 'anon').map(([, n]) => n)
  if (clients.length > 0) parts.push(`${plural(clients.length, 'client token')} (lowest ${count(Math.min(...clients))})`)
  return parts.join(', ')
}

/** `ghcr.io 12, registry.npmjs.org 3 (+2 tunnelled)`: the hosts with the most requests first, 5 at most. */
function formatProxyHosts (byHost: StatsSnapshot['proxy_by_host']): string {
  const hosts = Object.entries(byHost).sort(([, a], [, b]) => (b.requests + b.tunnels) - (a.requests + a.tunnels))
  if (hosts.length === 0) return '–'
  const shown = hosts.slice(0, 5).map(([host, c]) =>
    `${host} ${count(c.requests + c.tunnels)}${c.refused > 0 ? ` (${count(c.refused)} refused)` : ''}`
  )
  return hosts.length > 5 ? `${shown.join(', ')} and ${plural(hosts.length - 5, 'other')}` : shown.join(', ')
}

/** The stats for a person: sections, sizes in units, the hit rate in percent. */
export function formatStats (base: string, s: StatsSnapshot): string {
  const lookups = s.hits + s.misses
  const rateLimits = Object.entries(s.api_ratelimit_remaining ?? {})
  const sections: Section[] = [
    ['Store', [
      ['size', formatBytes(s.current_size)],
      ['stored', plural(s.stores, 'blob')],
      ['evicted', plural(s.evictions, 'blob')],
      ['filesystem full', s.store_full === true ? 'YES: misses are served without being stored' : 'no'],
      ['served without storing', `${plural(s.store_full_events ?? 0, 'blob')}  (${formatBytes(s.bytes_passed_through ?? 0)})`]
    ]],
    ['Registry', [
      [
        'hit rate',
        lookups === 0
          ? '– (no requests yet)'
          : `${(s.hit_rate * 100).toFixed(1)}%  (${plural(s.hits, 'hit')}, ${plural(s.misses, 'miss', 'misses')})`
      ],
      [
        'misses from peers',
        `${count(s.peer_hits)}  (${formatBytes(s.bytes_from_peers)}${
          (s.bytes_from_peers_data_channel ?? 0) > 0 ? `, ${formatBytes(s.bytes_from_peers_data_channel ?? 0)} over the data channel` : ''
        })`
      ],
      ['misses from upstream', `${count(s.upstream_hits)}  (${formatBytes(s.bytes_from_upstream)})`],
      ['stale tags served', count(s.stale_tags_served)],
      ['upstream rate limit left', formatRegistryLimits(s.registry_ratelimit ?? {})],
      ['pushed (local namespace)', `${plural(s.pushes ?? 0, 'manifest')}  (${formatBytes(s.bytes_pushed ?? 0)} of blobs)`],
      ['replicas placed / held', `${count(s.replicas_placed ?? 0)} / ${count(s.replicas_held ?? 0)}`],
      [
        'pushes refused for replicas',
        `${count(s.replication_failures ?? 0)}${
          (s.pushes ?? 0) > 0
            ? `  (replication lag ${Math.round((s.replication_wait_seconds ?? 0) / (s.pushes ?? 1) * 1000)} ms a push)`
            : ''
        }`
      ]
    ]],
    ['Peers', [
      ['connected', count(s.peers_connected)],
      ['sent to peers', formatBytes(s.bytes_served_to_peers)],
      ['claims won / joined', `${count(s.claims_won)} / ${count(s.claims_joined)}`],
      ['upstream fetches saved', count(s.upstream_fetches_saved)],
      ['read from downloads in progress', count(s.peer_inflight_joins)],
      ['busy answers from named peers', count(s.peer_busy_answers)],
      ['pieces received / served', `${count(s.pieces_from_peers ?? 0)} / ${count(s.pieces_served_to_peers ?? 0)}`],
      ['from peers still receiving', formatBytes(s.bytes_from_partial_holders ?? 0)],
      ['pieces re-fetched (bad hash)', count(s.pieces_refetched ?? 0)],
      ['peers deny-listed', count(s.peers_denied ?? 0)],
      ['upload rate (last 10 s)', `${formatBytes(s.upload_rate ?? 0)}/s`],
      ['peers pieces moved with', count(Object.keys(s.pieces_by_peer ?? {}).length)]
    ]],
    ['Proxy', [
      ['requests answered', `${count(s.proxy_requests ?? 0)}  (${formatBytes(s.bytes_proxied ?? 0)})`],
      ['tunnels / refused', `${count(s.proxy_tunnels ?? 0)} / ${count(s.proxy_refused ?? 0)}`],
      ['hosts', formatProxyHosts(s.proxy_by_host ?? {})]
    ]],
    ['Actions cache', [
      ['entries saved', count(s.actions_cache_saves ?? 0)],
      ['lookups: hits / misses', `${count(s.actions_cache_hits ?? 0)} / ${count(s.actions_cache_misses ?? 0)}`],
      [
        'archives sent to jobs',
        `${formatBytes(s.actions_cache_bytes_served ?? 0)}  (${plural(s.actions_cache_peer_downloads ?? 0, 'download')} from other runners)`
      ]
    ]],
    ['Bucket (S3)', [
      ['hits / misses', `${count(s.s3_hits ?? 0)} / ${count(s.s3_misses ?? 0)}`],
      [
        'read / written',
        `${formatBytes(s.s3_bytes_read ?? 0)} / ${formatBytes(s.s3_bytes_written ?? 0)}  (${plural(s.s3_uploads ?? 0, 'object')} written)`
      ],
      ['uploads queued / dropped', `${count(s.s3_queue ?? 0)} / ${count(s.s3_uploads_dropped ?? 0)}`],
      ['errors / bad objects', `${count(s.s3_errors ?? 0)} / ${count(s.s3_bad_objects ?? 0)}`]
    ]],
    ['API', [
      ['304 revalidations', count(s.revalidations_304)],
      [
        'rate limit left',
        rateLimits.length === 0 ? '–' : rateLimits.map(([name, byCredential]) => `${name}: ${formatRateLimits(byCredential)}`).join('; ')
      ]
    ]],
    ['HTTP', [
      ['served to clients', formatBytes(s.bytes_served)],
      ['errors', count(s.errors)]
    ]]
  ]
  // A field added to the server's JSON later is still shown, under its own name.
  const known = new Set([
    'current_size',
    'stores',
    'evictions',
    'hits',
    'misses',
    'hit_rate',
    'peer_hits',
    'bytes_from_peers',
    'bytes_from_peers_data_channel',
    'upstream_hits',
    'bytes_from_upstream',
    'stale_tags_served',
    'peers_connected',
    'bytes_served_to_peers',
    'revalidations_304',
    'api_ratelimit_remaining',
    'bytes_served',
    'errors',
    'claims_won',
    'claims_joined',
    'upstream_fetches_saved',
    'peer_inflight_joins',
    'peer_busy_answers',
    'registry_ratelimit',
    'store_full',
    'store_full_events',
    'bytes_passed_through',
    'pieces_from_peers',
    'pieces_served_to_peers',
    'bytes_from_partial_holders',
    'pieces_refetched',
    'peers_denied',
    'upload_rate',
    'pieces_by_peer',
    'proxy_requests',
    'bytes_proxied',
    'proxy_tunnels',
    'proxy_refused',
    'proxy_by_host',
    'pushes',
    'bytes_pushed',
    'replicas_placed',
    'replicas_held',
    'replication_failures',
    'replication_wait_seconds',
    'actions_cache_saves',
    'actions_cache_hits',
    'actions_cache_misses',
    'actions_cache_peer_downloads',
    'actions_cache_bytes_served',
    's3_hits',
    's3_misses',
    's3_bytes_read',
    's3_bytes_written',
    's3_uploads',
    's3_uploads_dropped',
    's3_errors',
    's3_bad_objects',
    's3_queue'
  ])
  const other = Object.entries(s).filter(([k]) => !known.has(k)).map((
    [k, v]
  ): [string, string] => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)])
  if (other.length > 0) sections.push(['Other', other])
  const width = Math.max(...sections.flatMap(([, rows]) => rows.map(([label]) => label.length)))
  return `p2p-cache at ${base}\n` +
    sections.map(([title, rows]) => `\n${title}\n${rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`).join('\n')}\n`).join(
      ''
    )
}
