import assert from 'node:assert/strict'
import { COUNTER_NAMES, Stats } from '../../../src/metrics/stats.js'

/** A Stats with its own registry and gauges the test sets. */
function newStats (gauges: { size?: number, peers?: number, full?: boolean } = {}): Stats {
  return new Stats({ currentSize: () => gauges.size ?? 0, peersConnected: () => gauges.peers ?? 0, storeFull: () => gauges.full ?? false })
}

/** The value of one sample line (`name{labels} value`) of the Prometheus text, or undefined. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('Stats: counters shared by the JSON stats and the Prometheus metrics', () => {
  it('starts every counter at zero, with no hit rate before the first lookup', () => {
    const s = newStats().snapshot()
    for (const name of COUNTER_NAMES) assert.equal(s[name], 0, name)
    assert.equal(s.hit_rate, 0)
    assert.deepEqual(s.api_ratelimit_remaining, {})
    assert.deepEqual(s.registry_ratelimit, {})
  })

  it('the JSON snapshot and the Prometheus text read the same numbers', async () => {
    const stats = newStats({ size: 1234, peers: 3, full: true })
    stats.inc('hits', 3)
    stats.inc('misses')
    stats.inc('bytes_served', 4096)
    const s = stats.snapshot()
    assert.equal(s.hits, 3)
    assert.equal(s.misses, 1)
    assert.equal(s.bytes_served, 4096)
    assert.equal(s.current_size, 1234)
    assert.equal(s.peers_connected, 3)
    assert.equal(s.store_full, true)
    const text = await stats.registry.metrics()
    assert.equal(sample(text, 'p2p_cache_hits_total'), 3)
    assert.equal(sample(text, 'p2p_cache_misses_total'), 1)
    assert.equal(sample(text, 'p2p_cache_bytes_served_total'), 4096)
    assert.equal(sample(text, 'p2p_cache_current_size_bytes'), 1234)
    assert.equal(sample(text, 'p2p_cache_peers_connected'), 3)
    assert.equal(sample(text, 'p2p_cache_store_full'), 1)
  })

  it('the forward proxy: requests, bytes, tunnels and refusals per host; Prometheus labels are intercept entries, not hosts', async () => {
    const stats = newStats()
    stats.proxied('us.gcr.io', 'requests', 1000, '*.gcr.io')
    stats.proxied('eu.gcr.io', 'requests', 500, '*.gcr.io')
    stats.proxied('github.com', 'tunnels')
    stats.proxied('169.254.169.254', 'refused')
    const s = stats.snapshot()
    assert.equal(s.proxy_requests, 2)
    assert.equal(s.bytes_proxied, 1500)
    assert.equal(s.proxy_tunnels, 1)
    assert.equal(s.proxy_refused, 1)
    assert.deepEqual(s.proxy_by_host['us.gcr.io'], { requests: 1, bytes: 1000, tunnels: 0, refused: 0 })
    assert.deepEqual(s.proxy_by_host['github.com'], { requests: 0, bytes: 0, tunnels: 1, refused: 0 })
    const text = await stats.registry.metrics()
    assert.equal(sample(text, 'p2p_cache_proxy_intercepted_requests_total{intercept="*.gcr.io"}'), 2)
    for (let i = 0; i < 100; i++) stats.proxied(`h${i}.example`, 'tunnels')
    assert.equal(Object.keys(stats.snapshot().proxy_by_host).length, 64, 'the 64 hosts seen last')
  })

  it('the gauges are read when scraped, not when set', async () => {
    const gauges = { size: 1, peers: 0, full: false }
    const stats = newStats(gauges)
    gauges.size = 99
    gauges.full = true
    assert.equal(stats.snapshot().current_size, 99)
    const text = await stats.registry.metrics()
    assert.equal(sample(text, 'p2p_cache_current_size_bytes'), 99)
    assert.equal(sample(text, 'p2p_cache_store_full'), 1)
  })

  it('every counter is exported as p2p_cache_<name>_total with its help text, plus process metrics', async () => {
    const text = await newStats().registry.metrics()
    for (const name of COUNTER_NAMES) {
      assert.match(text, new RegExp(`^# HELP p2p_cache_${name}_total \\S.*$`, 'm'), name)
      assert.match(text, new RegExp(`^# TYPE p2p_cache_${name}_total counter$`, 'm'), name)
    }
    assert.match(text, /^p2p_cache_process_\w*resident_memory_bytes \d+/m, 'Node.js process metrics under p2p_cache_process_ (README)')
    const unprefixed = text.split('\n').filter(l => l !== '' && !l.startsWith('#') && !l.startsWith('p2p_cache_'))
    assert.deepEqual(unprefixed, [])
  })

  it('hit rate is hits over hits and misses, to four decimals', () => {
    const stats = newStats()
    stats.inc('hits', 2)
    stats.inc('misses')
    assert.equal(stats.snapshot().hit_rate, 0.6667)
  })

  it('two Stats never share counters (each has its own registry)', async () => {
    const a = newStats()
    const b = newStats()
    a.inc('errors', 5)
    assert.equal(b.snapshot().errors, 0)
    assert.equal(sample(await b.registry.metrics(), 'p2p_cache_errors_total'), 0)
    assert.notEqual(a.registry, b.registry)
  })

  it('remembers when a peer last answered a miss', () => {
    const stats = newStats()
    assert.equal(stats.lastPeerHitAt, undefined)
    const before = Date.now()
    stats.inc('peer_hits')
    const at = stats.lastPeerHitAt as Date | undefined
    assert.ok(at !== undefined && at.getTime() >= before)
  })

  it('API rate limits are kept per upstream and credential label, the latest value each', async () => {
    const stats = newStats()
    stats.setApiRateLimit('github', 'fleet', 4990)
    stats.setApiRateLimit('github', 'anon', 59)
    stats.setApiRateLimit('github', 'anon', 58)
    stats.setApiRateLimit('ghe', 'fleet', 100)
    assert.deepEqual(stats.snapshot().api_ratelimit_remaining, { github: { fleet: 4990, anon: 58 }, ghe: { fleet: 100 } })
    const text = await stats.registry.metrics()
    assert.equal(sample(text, 'p2p_cache_api_ratelimit_remaining{upstream="github",credential="anon"}'), 58)
    assert.equal(sample(text, 'p2p_cache_api_ratelimit_remaining{upstream="ghe",credential="fleet"}'), 100)
  })

  it('keeps the 16 most recently seen credentials per upstream (a new token every job), in JSON and in Prometheus', async () => {
    const stats = newStats()
    stats.setApiRateLimit('github', 'fleet', 5000)
    for (let i = 0; i < 40; i++) stats.setApiRateLimit('github', `job${i}`, 1000 - i)
    stats.setApiRateLimit('github', 'fleet', 4999) // seen again: now the most recent
    stats.setApiRateLimit('other', 'anon', 1)
    const kept = Object.keys(stats.snapshot().api_ratelimit_remaining.github ?? {})
    assert.equal(kept.length, 16)
    assert.ok(kept.includes('fleet'), 'refreshed, so kept')
    assert.ok(kept.includes('job39') && !kept.includes('job24'))
    const text = await stats.registry.metrics()
    assert.equal(text.split('\n').filter(l => l.startsWith('p2p_cache_api_ratelimit_remaining{upstream="github"')).length, 16)
    assert.equal(
      sample(text, 'p2p_cache_api_ratelimit_remaining{upstream="github",credential="job0"}'),
      undefined,
      'removed from Prometheus too'
    )
    assert.equal(sample(text, 'p2p_cache_api_ratelimit_remaining{upstream="other",credential="anon"}'), 1, 'other upstreams keep theirs')
  })

  it('registry rate limits: remaining always, limit and window only when stated', async () => {
    const stats = newStats()
    stats.setRegistryRateLimit('docker.io', { remaining: 76, limit: 100, windowS: 21600 })
    stats.setRegistryRateLimit('ghcr.io', { remaining: 5 })
    assert.deepEqual(stats.snapshot().registry_ratelimit, {
      'docker.io': { remaining: 76, limit: 100, window_s: 21600 },
      'ghcr.io': { remaining: 5 }
    })
    const text = await stats.registry.metrics()
    assert.equal(sample(text, 'p2p_cache_registry_ratelimit_remaining{upstream="docker.io"}'), 76)
    assert.equal(sample(text, 'p2p_cache_registry_ratelimit_limit{upstream="docker.io"}'), 100)
    assert.equal(sample(text, 'p2p_cache_registry_ratelimit_remaining{upstream="ghcr.io"}'), 5)
    assert.equal(sample(text, 'p2p_cache_registry_ratelimit_limit{upstream="ghcr.io"}'), undefined)
  })
})
