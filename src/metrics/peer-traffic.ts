import { RecentMap } from './recent-map.js'

/** Bytes one peer sent this node and this node sent it, whole blobs and pieces alike. */
export interface PeerTrafficCounts {
  bytes_received: number
  bytes_sent: number
  /** When bytes last moved either way (ms since the epoch). */
  last_at: number
}

/** Peers tallied at once; the ones not heard from longest go first (runners come and go). */
const MAX_PEERS = 64

/**
 * Bytes exchanged with each peer, for the status page (`GET /api/status`): who this node leans
 * on and who leans on it. Not a Prometheus label: peer IDs change with every runner.
 */
export class PeerTraffic {
  private readonly byPeer = new RecentMap<PeerTrafficCounts>(MAX_PEERS)

  constructor (private readonly now: () => number = Date.now) {}

  /** `bytes` moved between this node and `peer`, in `direction`. */
  add (peer: string, direction: 'received' | 'sent', bytes: number): void {
    const counts = this.byPeer.touch(peer, () => ({ bytes_received: 0, bytes_sent: 0, last_at: 0 }))
    if (direction === 'received') counts.bytes_received += bytes
    else counts.bytes_sent += bytes
    counts.last_at = this.now()
  }

  snapshot (): Record<string, PeerTrafficCounts> {
    return Object.fromEntries([...this.byPeer.entries()].map(([peer, c]) => [peer, { ...c }]))
  }
}
