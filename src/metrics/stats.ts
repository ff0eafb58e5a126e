import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { PeerPieces, RecentRate, type PeerPieceCounts } from './peer-pieces.js'
import { ProxyHosts, type ProxyHostCounts } from './proxy-hosts.js'
import { PeerTraffic } from './peer-traffic.js'
import { ImagePulls } from './image-pulls.js'

/** Counters named as in docs/design.md §3.3; the JSON stats and Prometheus metrics read the same numbers. */
export const COUNTER_NAMES = [
  'hits',
  'misses',
  'stores',
  'evictions',
  'errors',
  'peer_hits',
  'upstream_hits',
  'bytes_from_peers',
  'bytes_from_peers_data_channel',
  'bytes_from_upstream',
  'bytes_served_to_peers',
  'revalidations_304',
  'bytes_served',
  'stale_tags_served',
  'claims_won',
  'claims_joined',
  'peer_inflight_joins',
  'upstream_fetches_saved',
  'peer_busy_answers',
  'store_full_events',
  'bytes_passed_through',
  'pieces_from_peers',
  'bytes_from_partial_holders',
  'pieces_refetched',
  'peers_denied',
  'pieces_served_to_peers',
  'proxy_requests',
  'bytes_proxied',
  'proxy_tunnels',
  'proxy_refused',
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
  's3_bad_objects'
] as const
export type CounterName = typeof COUNTER_NAMES[number]

const HELP: Record<CounterName, string> = {
  hits: 'Requests served from the local store',
  misses: 'Requests for content the local store did not have',
  stores: 'Blobs verified and committed to the store',
  evictions: 'Blobs removed by the eviction policy',
  errors: 'Requests that failed, corrupt files found, digest mismatches',
  peer_hits: 'Misses answered by a peer',
  upstream_hits: 'Misses answered by an upstream',
  bytes_from_peers: 'Bytes received from peers',
  bytes_from_peers_data_channel: 'Bytes received from peers over the data channel (CACHE_P2P_DATA_PORT), part of bytes_from_peers',
  bytes_from_upstream: 'Bytes received from upstreams',
  bytes_served_to_peers: 'Bytes sent to peers',
  revalidations_304: 'Conditional upstream requests answered 304',
  bytes_served: 'Bytes sent to HTTP clients',
  stale_tags_served: 'Tags served from the last resolution because the upstream was unavailable',
  claims_won: 'Misses for which the coordinator told this node to fetch from the upstream',
  claims_joined: 'Misses for which the coordinator named a peer that is fetching or has the content',
  peer_inflight_joins: 'Peer transfers read from a download still in progress on that peer',
  upstream_fetches_saved: 'Misses served by the peer a claim named, instead of a fetch from the upstream',
  pieces_from_peers: 'Pieces (1 MiB) received from peers and verified against their piece hash',
  bytes_from_partial_holders:
    'Bytes received from peers that were themselves still receiving the blob (relayed verified pieces), part of bytes_from_peers',
  pieces_refetched: 'Pieces that did not match their piece hash and were asked of another holder',
  peers_denied: 'Peers deny-listed for sending bytes that did not match their digest or piece hash',
  pieces_served_to_peers: 'Piece requests (fetch/1.2.0 ranges) served to peers',
  peer_busy_answers:
    'Times a holder answered busy (it serves CACHE_MAX_UPLOADS already, or has nothing at that offset yet); other holders are tried, then it is asked again',
  store_full_events: 'Downloads that could not be stored because the filesystem of CACHE_DIR was full (served without being stored)',
  bytes_passed_through: 'Bytes streamed from an upstream to clients without being stored (full filesystem)',
  proxy_requests: 'Requests the forward proxy answered on intercepted connections (and absolute-form http requests)',
  bytes_proxied: 'Response bytes of those requests sent to clients',
  proxy_tunnels: 'CONNECT tunnels the forward proxy opened to hosts it does not intercept',
  proxy_refused: 'CONNECTs and requests the forward proxy refused (allowlist, metadata address, own port, unreachable host)',
  pushes: 'Manifests pushed to the local namespace (CACHE_LOCAL_NAMESPACE)',
  bytes_pushed: 'Blob bytes pushed to the local namespace, verified and stored',
  replicas_placed: 'Blobs and manifests pushed here that another node confirmed it holds (one per copy)',
  replicas_held: 'Blobs and manifests this node holds for pushes to other nodes (one per request and digest)',
  replication_failures: 'Manifest PUTs refused with 503 because no replica could be placed within CACHE_LOCAL_REPLICA_TIMEOUT',
  replication_wait_seconds: 'Time manifest PUTs waited for their replicas (the replication lag a push sees), in seconds',
  actions_cache_saves: 'Actions cache entries saved (finalized) through this sidecar',
  actions_cache_hits: 'Actions cache lookups answered with an entry (exact key or restore-key prefix), from this node or the swarm',
  actions_cache_misses: "Actions cache lookups with no entry in the token's scopes",
  actions_cache_peer_downloads: 'Actions cache archives downloaded here that came from another runner (the rest were in this store)',
  actions_cache_bytes_served: "Actions cache archive bytes sent to jobs: what they did not download from GitHub's cache service",
  s3_hits: 'Blobs, manifests and records found in the bucket (CACHE_S3_URL) when the store and peers had none',
  s3_misses: 'Bucket reads that found no object',
  s3_bytes_read: 'Bytes read from the bucket',
  s3_bytes_written: 'Bytes written to the bucket',
  s3_uploads: 'Objects written to the bucket (objects it already had are not written again)',
  s3_uploads_dropped: 'Uploads to the bucket given up: the queue was full, every try failed, or the sidecar stopped first',
  s3_errors: 'Bucket requests that failed or timed out (CACHE_S3_TIMEOUT); reads then go on to the upstream',
  s3_bad_objects: 'Bucket objects whose bytes did not match their digest, or records that did not parse: skipped, and written over'
}

/** Credentials whose rate limit is reported per API upstream (the most recent ones). */
const RATE_LIMIT_LABELS = 16

export interface StatsSnapshot extends Record<CounterName, number> {
  current_size: number
  hit_rate: number
  peers_connected: number
  /** The filesystem of CACHE_DIR is full: what misses fetch is served without being stored. */
  store_full: boolean
  /**
   * Last X-RateLimit-Remaining seen from each API upstream, per credential: `anon`, `fleet`, or
   * 12 hex characters of the credential's keyed hash (its scope); the most recent 16 per upstream.
   */
  api_ratelimit_remaining: Record<string, Record<string, number>>
  /** Last `ratelimit-remaining` / `ratelimit-limit` (Docker Hub's pull limit) seen from each registry upstream. */
  registry_ratelimit: Record<string, { remaining: number, limit?: number, window_s?: number }>
  /** Bytes per second sent to peers over the last 10 s. */
  upload_rate: number
  /** Pieces received from and served to each peer (the 64 heard from most recently). */
  pieces_by_peer: Record<string, PeerPieceCounts>
  /** The forward proxy's requests, tunnels and refusals per host (the 64 seen most recently). */
  proxy_by_host: Record<string, ProxyHostCounts>
  /** Uploads to the bucket waiting, retrying or running (0 without CACHE_S3_URL). */
  s3_queue: number
}

export class Stats {
  readonly registry = new Registry()
  private readonly values = Object.fromEntries(COUNTER_NAMES.map(n => [n, 0])) as Record<CounterName, number>
  private readonly counters: Record<CounterName, Counter>
  private readonly rateLimits = new Map<string, Map<string, number>>()
  private readonly rateLimitGauge: Gauge
  private readonly registryLimits = new Map<string, { remaining: number, limit?: number, window_s?: number }>()
  private readonly registryRemainingGauge: Gauge
  private readonly registryLimitGauge: Gauge
  /** When a peer last answered a miss (diagnose reports it). */
  lastPeerHitAt: Date | undefined
  /** Pieces moved with each peer (see PeerPieces). */
  readonly peerPieces = new PeerPieces()
  /** Bytes exchanged with each peer (see PeerTraffic). */
  readonly peerTraffic = new PeerTraffic()
  /** Pulls and sizes per image (see ImagePulls). */
  readonly imagePulls = new ImagePulls()
  private readonly uploadRate = new RecentRate()
  private readonly proxyHosts = new ProxyHosts()
  private readonly proxyHostCounter: Counter

  constructor (
    private readonly gauges: {
      currentSize: () => number
      peersConnected: () => number
      storeFull: () => boolean
      bucketQueue?: () => number
      /** CACHE_MAX_SIZE, bytes. */
      maxSize?: () => number
      /** Blob downloads running now (from peers, the bucket or upstreams). */
      downloads?: () => number
      /** Blobs being sent to peers now. */
      uploads?: () => number
    }
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'p2p_cache_process_' })
    this.counters = Object.fromEntries(COUNTER_NAMES.map(n => [
      n,
      new Counter({
        name: `p2p_cache_${n}_total`,
        help: HELP[n],
        registers: [this.registry]
      })
    ])) as Record<CounterName, Counter>
    new Gauge({
      name: 'p2p_cache_current_size_bytes',
      help: 'Bytes in the store',
      registers: [this.registry],
      collect () {
        this.set(gauges.currentSize())
      }
    })
    new Gauge({
      name: 'p2p_cache_max_size_bytes',
      help: "The store's bound (CACHE_MAX_SIZE)",
      registers: [this.registry],
      collect () {
        this.set(gauges.maxSize?.() ?? 0)
      }
    })
    new Gauge({
      name: 'p2p_cache_downloads_in_progress',
      help: 'Blob downloads running now, from peers, the bucket or upstreams',
      registers: [this.registry],
      collect () {
        this.set(gauges.downloads?.() ?? 0)
      }
    })
    new Gauge({
      name: 'p2p_cache_uploads_to_peers_in_progress',
      help: 'Blobs being sent to peers now',
      registers: [this.registry],
      collect () {
        this.set(gauges.uploads?.() ?? 0)
      }
    })
    new Gauge({
      name: 'p2p_cache_store_full',
      help: '1 while the filesystem of CACHE_DIR is full (misses are served without being stored)',
      registers: [this.registry],
      collect () {
        this.set(gauges.storeFull() ? 1 : 0)
      }
    })
    const uploadRate = this.uploadRate
    new Gauge({
      name: 'p2p_cache_upload_rate_bytes',
      help: 'Bytes per second sent to peers, averaged over the last 10 s (what CACHE_P2P_MAX_UPLOAD_RATE caps)',
      registers: [this.registry],
      collect () {
        this.set(uploadRate.perSecond)
      }
    })
    new Gauge({
      name: 'p2p_cache_s3_queue',
      help: 'Uploads to the bucket (CACHE_S3_URL) waiting, retrying or running',
      registers: [this.registry],
      collect () {
        this.set(gauges.bucketQueue?.() ?? 0)
      }
    })
    new Gauge({
      name: 'p2p_cache_peers_connected',
      help: 'Connected peers',
      registers: [this.registry],
      collect () {
        this.set(gauges.peersConnected())
      }
    })
    this.rateLimitGauge = new Gauge({
      name: 'p2p_cache_api_ratelimit_remaining',
      help: 'Last X-RateLimit-Remaining seen from an API upstream, per credential (anon, fleet, or a hash prefix)',
      labelNames: ['upstream', 'credential'],
      registers: [this.registry]
    })
    this.registryRemainingGauge = new Gauge({
      name: 'p2p_cache_registry_ratelimit_remaining',
      help: 'Last ratelimit-remaining seen from a registry upstream (Docker Hub: pulls left in its window)',
      labelNames: ['upstream'],
      registers: [this.registry]
    })
    this.proxyHostCounter = new Counter({
      name: 'p2p_cache_proxy_intercepted_requests_total',
      help: 'Requests the forward proxy answered on intercepted connections, per entry of CACHE_PROXY_INTERCEPT that matched the host',
      labelNames: ['intercept'],
      registers: [this.registry]
    })
    this.registryLimitGauge = new Gauge({
      name: 'p2p_cache_registry_ratelimit_limit',
      help: 'Last ratelimit-limit seen from a registry upstream (Docker Hub: pulls allowed per window)',
      labelNames: ['upstream'],
      registers: [this.registry]
    })
  }

  /** Docker Hub's pull rate limit as an upstream last stated it (its `ratelimit-*` headers). */
  setRegistryRateLimit (upstream: string, state: { remaining: number, limit?: number, windowS?: number }): void {
    this.registryLimits.set(upstream, {
      remaining: state.remaining,
      ...(state.limit !== undefined ? { limit: state.limit } : {}),
      ...(state.windowS !== undefined ? { window_s: state.windowS } : {})
    })
    this.registryRemainingGauge.set({ upstream }, state.remaining)
    if (state.limit !== undefined) this.registryLimitGauge.set({ upstream }, state.limit)
  }

  /**
   * `credential` is a label, never the credential: see StatsSnapshot.api_ratelimit_remaining.
   * Every job brings a new token, so only the RATE_LIMIT_LABELS most recent are kept.
   */
  setApiRateLimit (upstream: string, credential: string, remaining: number): void {
    let byCredential = this.rateLimits.get(upstream)
    if (byCredential === undefined) this.rateLimits.set(upstream, byCredential = new Map())
    byCredential.delete(credential)
    byCredential.set(credential, remaining)
    this.rateLimitGauge.set({ upstream, credential }, remaining)
    for (const old of byCredential.keys()) {
      if (byCredential.size <= RATE_LIMIT_LABELS) break
      byCredential.delete(old)
      this.rateLimitGauge.remove({ upstream, credential: old })
    }
  }

  /**
   * One thing the forward proxy did for `host`: a request answered (`bytes` sent to the client;
   * `intercept`: the CACHE_PROXY_INTERCEPT entry that matched, for the Prometheus label), a
   * tunnel opened, or a refusal.
   */
  proxied (host: string, what: 'requests' | 'tunnels' | 'refused', bytes = 0, intercept?: string): void {
    this.proxyHosts.add(host, what, bytes)
    if (what === 'requests') {
      this.inc('proxy_requests')
      if (bytes > 0) this.inc('bytes_proxied', bytes)
      if (intercept !== undefined) this.proxyHostCounter.inc({ intercept })
    } else {
      this.inc(what === 'tunnels' ? 'proxy_tunnels' : 'proxy_refused')
    }
  }

  /** The counters' values now (not a copy: read, don't keep). */
  get counts (): Readonly<Record<CounterName, number>> {
    return this.values
  }

  inc (name: CounterName, by = 1): void {
    this.values[name] += by
    this.counters[name].inc(by)
    if (name === 'peer_hits') this.lastPeerHitAt = new Date()
    if (name === 'bytes_served_to_peers') this.uploadRate.add(by)
  }

  snapshot (): StatsSnapshot {
    const lookups = this.values.hits + this.values.misses
    return {
      ...this.values,
      current_size: this.gauges.currentSize(),
      hit_rate: lookups === 0 ? 0 : Number((this.values.hits / lookups).toFixed(4)),
      peers_connected: this.gauges.peersConnected(),
      store_full: this.gauges.storeFull(),
      api_ratelimit_remaining: Object.fromEntries([...this.rateLimits].map(([upstream, m]) => [upstream, Object.fromEntries(m)])),
      registry_ratelimit: Object.fromEntries(this.registryLimits),
      upload_rate: this.uploadRate.perSecond,
      pieces_by_peer: this.peerPieces.snapshot(),
      proxy_by_host: this.proxyHosts.snapshot(),
      s3_queue: this.gauges.bucketQueue?.() ?? 0
    }
  }
}
