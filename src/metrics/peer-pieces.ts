import { RecentMap } from './recent-map.js'

/** Pieces one peer sent this node and this node sent it. */
export interface PeerPieceCounts {
  received: number
  bytes_received: number
  served: number
  bytes_served: number
}

/** Peers tallied at once; the ones not heard from longest go first (runners come and go). */
const MAX_PEERS = 64

/**
 * Pieces received from and served to each peer (issue 23), for `/api/cache/stats`: who carries a
 * herd, and who leans on whom. Not a Prometheus label: peer IDs change with every runner.
 */
export class PeerPieces {
  private readonly byPeer = new RecentMap<PeerPieceCounts>(MAX_PEERS)

  /** `pieces` pieces (`bytes` bytes) moved between this node and `peer`, in `direction`. */
  add (peer: string, direction: 'received' | 'served', pieces: number, bytes: number): void {
    const counts = this.byPeer.touch(peer, () => ({ received: 0, bytes_received: 0, served: 0, bytes_served: 0 }))
    if (direction === 'received') {
      counts.received += pieces
      counts.bytes_received += bytes
    } else {
      counts.served += pieces
      counts.bytes_served += bytes
    }
  }

  snapshot (): Record<string, PeerPieceCounts> {
    return Object.fromEntries([...this.byPeer.entries()].map(([peer, c]) => [peer, { ...c }]))
  }
}

/** The window the upload rate is averaged over (ms). */
export const UPLOAD_RATE_WINDOW_MS = 10_000

/**
 * Bytes per second sent to peers, averaged over the last UPLOAD_RATE_WINDOW_MS: what
 * CACHE_P2P_MAX_UPLOAD_RATE caps, measured. Samples are summed per 100 ms slot.
 */
export class RecentRate {
  private readonly slots: Array<{ at: number, bytes: number }> = []

  constructor (private readonly now: () => number = Date.now, private readonly windowMs = UPLOAD_RATE_WINDOW_MS) {}

  add (bytes: number): void {
    const at = Math.floor(this.now() / 100) * 100
    const last = this.slots[this.slots.length - 1]
    if (last?.at === at) last.bytes += bytes
    else this.slots.push({ at, bytes })
    this.prune()
  }

  /** Bytes per second over the window. */
  get perSecond (): number {
    this.prune()
    let bytes = 0
    for (const s of this.slots) bytes += s.bytes
    return Math.round(bytes / (this.windowMs / 1000))
  }

  private prune (): void {
    const from = this.now() - this.windowMs
    while (this.slots.length > 0 && (this.slots[0]?.at ?? 0) < from) this.slots.shift()
  }
}
