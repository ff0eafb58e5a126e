import assert from 'node:assert/strict'
import { formatStats } from '../../../src/cli/stats-format.js'
import { COUNTER_NAMES, type StatsSnapshot } from '../../../src/metrics/stats.js'

/** A snapshot of an idle sidecar, with `over` applied. */
function snapshot (over: Partial<StatsSnapshot> = {}): StatsSnapshot {
  const counters = Object.fromEntries(COUNTER_NAMES.map(n => [n, 0])) as Record<typeof COUNTER_NAMES[number], number>
  return {
    ...counters,
    current_size: 0,
    hit_rate: 0,
    peers_connected: 0,
    store_full: false,
    api_ratelimit_remaining: {},
    registry_ratelimit: {},
    upload_rate: 0,
    pieces_by_peer: {},
    proxy_by_host: {},
    s3_queue: 0,
    ...over
  }
}

/** The value printed on the row labelled `label`. */
function row (text: string, label: string): string | undefined {
  const line = text.split('\n').find(l => l.startsWith(`  ${label} `))
  return line?.slice(2 + label.length).trim()
}

describe('formatStats: `p2p-cache stats` for a person', () => {
  it('names the sidecar, then titled sections with aligned rows', () => {
    const text = formatStats('http://127.0.0.1:9080', snapshot())
    assert.equal(text.split('\n')[0], 'p2p-cache at http://127.0.0.1:9080')
    assert.deepEqual(text.split('\n').filter(l => /^[A-Z]/.test(l)), [
      'Store',
      'Registry',
      'Peers',
      'Proxy',
      'Actions cache',
      'Bucket (S3)',
      'API',
      'HTTP'
    ])
    const valueColumns = new Set(text.split('\n').filter(l => l.startsWith('  ')).map(l => /^ {2}\S.*?\s{2,}(?=\S)/.exec(l)?.[0].length))
    assert.equal(valueColumns.size, 1, 'every value starts in the same column')
  })

  it('the proxy: requests with bytes, tunnels and refusals, the busiest hosts first', () => {
    const text = formatStats(
      'u',
      snapshot({
        proxy_requests: 12,
        bytes_proxied: 2048,
        proxy_tunnels: 3,
        proxy_refused: 1,
        proxy_by_host: {
          'github.com': { requests: 0, bytes: 0, tunnels: 3, refused: 0 },
          'ghcr.io': { requests: 12, bytes: 2048, tunnels: 0, refused: 0 },
          '169.254.169.254': { requests: 0, bytes: 0, tunnels: 0, refused: 1 }
        }
      })
    )
    assert.equal(row(text, 'requests answered'), '12  (2.0 KiB)')
    assert.equal(row(text, 'tunnels / refused'), '3 / 1')
    assert.equal(row(text, 'hosts'), 'ghcr.io 12, github.com 3, 169.254.169.254 0 (1 refused)')
  })

  it('before any request, says so instead of a 0% hit rate; no rate limit seen is a dash', () => {
    const text = formatStats('u', snapshot())
    assert.equal(row(text, 'hit rate'), '– (no requests yet)')
    assert.equal(row(text, 'rate limit left'), '–')
    assert.equal(row(text, 'upstream rate limit left'), '–')
    assert.equal(row(text, 'filesystem full'), 'no')
  })

  it('shows the hit rate in percent with the counts, sizes in binary units, counts with separators, singular and plural', () => {
    const text = formatStats(
      'u',
      snapshot({
        hits: 1,
        misses: 2,
        hit_rate: 0.3333,
        current_size: 3.4 * 1024 ** 2,
        stores: 1,
        evictions: 12345,
        peer_hits: 2,
        bytes_from_peers: 2048,
        bytes_from_peers_data_channel: 1024,
        upstream_hits: 1,
        bytes_from_upstream: 0
      })
    )
    assert.equal(row(text, 'hit rate'), '33.3%  (1 hit, 2 misses)')
    assert.equal(row(text, 'size'), '3.4 MiB')
    assert.equal(row(text, 'stored'), '1 blob')
    assert.equal(row(text, 'evicted'), '12,345 blobs')
    assert.equal(row(text, 'misses from peers'), '2  (2.0 KiB, 1.0 KiB over the data channel)')
    assert.equal(row(text, 'misses from upstream'), '1  (0 B)')
  })

  it('says loudly when the filesystem is full, and what was passed through unstored', () => {
    const text = formatStats('u', snapshot({ store_full: true, store_full_events: 3, bytes_passed_through: 5 * 1024 ** 3 }))
    assert.equal(row(text, 'filesystem full'), 'YES: misses are served without being stored')
    assert.equal(row(text, 'served without storing'), '3 blobs  (5.0 GiB)')
  })

  it('API rate limits: fleet and anonymous buckets by name, client tokens summed up with the lowest', () => {
    const text = formatStats(
      'u',
      snapshot({
        api_ratelimit_remaining: {
          github: { '3f9a0c1d2e4b': 4998, fleet: 4990, anon: 58, '0a1b2c3d4e5f': 4997 },
          ghe: { abcdefabcdef: 10 }
        }
      })
    )
    assert.equal(
      row(text, 'rate limit left'),
      'github: fleet 4,990, anon 58, 2 client tokens (lowest 4,997); ghe: 1 client token (lowest 10)'
    )
  })

  it('registry rate limits: remaining, of the limit, per window in hours when whole', () => {
    const text = formatStats(
      'u',
      snapshot({
        registry_ratelimit: {
          'docker.io': { remaining: 76, limit: 100, window_s: 21600 },
          'ghcr.io': { remaining: 5, window_s: 90 },
          quay: { remaining: 1000 }
        }
      })
    )
    assert.equal(row(text, 'upstream rate limit left'), 'docker.io 76 of 100 per 6 h, ghcr.io 5 per 90 s, quay 1,000')
  })

  it('shows a field an older or newer server sent under its own name, and tolerates missing newer fields', () => {
    const old = snapshot({ future_counter: 7, future_map: { a: 1 } } as unknown as Partial<StatsSnapshot>) as unknown as Record<
      string,
      unknown
    >
    delete old.store_full_events
    delete old.bytes_passed_through
    delete old.registry_ratelimit
    const text = formatStats('u', old as unknown as StatsSnapshot)
    assert.match(text, /\nOther\n {2}future_counter\s+7\n {2}future_map\s+\{"a":1\}\n$/)
    assert.equal(row(text, 'served without storing'), '0 blobs  (0 B)')
    assert.ok(!text.includes('undefined') && !text.includes('NaN'))
  })
})
