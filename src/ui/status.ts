import type { P2pInfo } from '../admin/admin-routes.js'
import type { LoggedWarning } from '../log/recent-warnings.js'
import type { ImagePullCounts } from '../metrics/image-pulls.js'
import type { Stats, StatsSnapshot } from '../metrics/stats.js'
import type { Transfer } from '../resolver/blob-resolver.js'
import type { StoreReader } from '../store/roles.js'
import { VERSION } from '../version/version.js'
import { PINS_TTL_MS, TOP_IMAGES, WARNINGS_SHOWN } from './constants.js'
import type { HistoryPoint, HitHistory } from './hit-history.js'

/** One finding of the reachability checks that is not ok. */
export interface ReachabilityFinding {
  check: string
  verdict: 'ok' | 'warn' | 'fail' | 'skip'
  summary: string
  subject?: string
  fix?: string
}

/**
 * Whether peers can reach this node and it them: the verdict of diagnose's reachability checks,
 * run at most every few minutes and only while someone looks (see Reachability in src/sidecar/).
 */
export interface ReachabilityView {
  /** `checking` until the first run ends; `off` without P2P. */
  state: 'checking' | 'done' | 'off' | 'error'
  verdict: 'ok' | 'warn' | 'fail' | undefined
  /** ISO 8601 of the run the verdict comes from. */
  checkedAt: string | undefined
  /** The findings that are not ok (warn and fail first). */
  findings: ReachabilityFinding[]
}

/** The cached reachability verdict; asking may start a new run in the background. */
export interface ReachabilitySource {
  current: () => ReachabilityView
}

/** One image as the page lists it. */
export interface ImageView extends ImagePullCounts {
  image: string
}

/** One peer as the page lists it. */
export interface PeerView {
  peerId: string
  addrs: string[]
  connected: boolean
  /** False when its data channel port did not answer lately (its blobs come over libp2p, slower). */
  dataReachable: boolean
  bytesReceived: number
  bytesSent: number
  /** ISO 8601 of the last bytes exchanged, if any. */
  lastAt: string | undefined
}

/** GET /api/status: everything the status page shows. */
export interface StatusView {
  generatedAt: string
  version: string
  node: { peerId: string | undefined, addrs: string[], dataPort: number | null, routingTable: number, uptimeS: number }
  reachability: ReachabilityView
  peers: PeerView[]
  requests: { local: number, peer: number, s3: number, upstream: number, stale: number, misses: number }
  /** hits / (hits + misses): the local store's share. */
  hitRatio: number
  bytes: { served: number, fromUpstream: number, fromPeers: number, fromS3: number, toPeers: number, saved: number }
  /** Requests answered without an upstream (local, peer and bucket hits). */
  upstreamRequestsSaved: number
  history: HistoryPoint[]
  rateLimits: Pick<StatsSnapshot, 'registry_ratelimit' | 'api_ratelimit_remaining'>
  transfers: { downloads: Transfer[], uploadsToPeers: number }
  images: { mostPulled: ImageView[], largest: ImageView[] }
  store: { size: number, maxSize: number, full: boolean, pinned: { blobs: number, bytes: number } }
  warnings: LoggedWarning[]
}

export interface StatusInit {
  stats: Pick<Stats, 'snapshot' | 'peerTraffic' | 'imagePulls'>
  store: Pick<StoreReader, 'maxSize' | 'entries'> & { readonly size: number, readonly full: boolean }
  history: Pick<HitHistory, 'list'>
  transfers: () => Transfer[]
  /** This node in the swarm; undefined when P2P is off. */
  p2p?: () => P2pInfo
  reachability: ReachabilitySource
  warnings: () => LoggedWarning[]
  startedAt?: number
  now?: () => number
}

/** Builds the status page's view from the sidecar's parts; counting pins is cached (PINS_TTL_MS). */
export class Status {
  private pins: { at: number, value: Promise<{ blobs: number, bytes: number }> } | undefined
  private readonly startedAt: number
  private readonly now: () => number

  constructor (private readonly init: StatusInit) {
    this.now = init.now ?? Date.now
    this.startedAt = init.startedAt ?? this.now()
  }

  /** The view now. @throws what reading the store's index throws (counting pins) */
  async view (): Promise<StatusView> {
    const { stats, store } = this.init
    const s = stats.snapshot()
    const p2p = this.init.p2p?.()
    const requests = {
      local: s.hits,
      peer: s.peer_hits,
      s3: s.s3_hits,
      upstream: s.upstream_hits,
      stale: s.stale_tags_served,
      misses: s.misses
    }
    const images = Object.entries(stats.imagePulls.snapshot()).map(([image, c]) => ({ image, ...c })).filter(i => i.pulls > 0)
    return {
      generatedAt: new Date(this.now()).toISOString(),
      version: VERSION,
      node: {
        peerId: p2p?.peerId,
        addrs: p2p?.addrs ?? [],
        dataPort: p2p?.dataPort ?? null,
        routingTable: p2p?.routingTable ?? 0,
        uptimeS: Math.round((this.now() - this.startedAt) / 1000)
      },
      reachability: this.init.reachability.current(),
      peers: p2p === undefined ? [] : peerViews(p2p, stats.peerTraffic.snapshot()),
      requests,
      hitRatio: s.hit_rate,
      bytes: {
        served: s.bytes_served,
        fromUpstream: s.bytes_from_upstream,
        fromPeers: s.bytes_from_peers,
        fromS3: s.s3_bytes_read,
        toPeers: s.bytes_served_to_peers,
        saved: Math.max(0, s.bytes_served - s.bytes_from_upstream)
      },
      upstreamRequestsSaved: s.hits + s.peer_hits + s.s3_hits,
      history: this.init.history.list(),
      rateLimits: { registry_ratelimit: s.registry_ratelimit, api_ratelimit_remaining: s.api_ratelimit_remaining },
      transfers: { downloads: this.init.transfers(), uploadsToPeers: p2p?.uploads ?? 0 },
      images: {
        mostPulled: [...images].sort((a, b) => b.pulls - a.pulls || b.last_at - a.last_at).slice(0, TOP_IMAGES),
        largest: [...images].sort((a, b) => b.bytes - a.bytes).slice(0, TOP_IMAGES)
      },
      store: { size: store.size, maxSize: store.maxSize, full: store.full, pinned: await this.pinned() },
      warnings: this.init.warnings().slice(-WARNINGS_SHOWN).reverse()
    }
  }

  private async pinned (): Promise<{ blobs: number, bytes: number }> {
    if (this.pins === undefined || this.now() - this.pins.at > PINS_TTL_MS) {
      this.pins = { at: this.now(), value: countPins(this.init.store) }
      this.pins.value.catch(() => {
        this.pins = undefined
      })
    }
    return await this.pins.value
  }
}

async function countPins (store: Pick<StoreReader, 'entries'>): Promise<{ blobs: number, bytes: number }> {
  let blobs = 0
  let bytes = 0
  for await (const [, record] of store.entries()) {
    if (record.pinned === true) {
      blobs++
      bytes += record.size
    }
  }
  return { blobs, bytes }
}

/** Connected peers and the ones bytes moved with lately, busiest first. */
function peerViews (p2p: P2pInfo, traffic: ReturnType<Stats['peerTraffic']['snapshot']>): PeerView[] {
  const unreachable = new Set(p2p.dataUnreachable)
  const ids = new Set([...p2p.peers.map(p => p.peerId), ...Object.keys(traffic)])
  const addrs = new Map(p2p.peers.map(p => [p.peerId, p.addrs]))
  return [...ids].map(peerId => {
    const t = traffic[peerId]
    return {
      peerId,
      addrs: addrs.get(peerId) ?? [],
      connected: addrs.has(peerId),
      dataReachable: !unreachable.has(peerId),
      bytesReceived: t?.bytes_received ?? 0,
      bytesSent: t?.bytes_sent ?? 0,
      lastAt: t === undefined ? undefined : new Date(t.last_at).toISOString()
    }
  }).sort((a, b) => Number(b.connected) - Number(a.connected) || b.bytesReceived + b.bytesSent - (a.bytesReceived + a.bytesSent))
}
