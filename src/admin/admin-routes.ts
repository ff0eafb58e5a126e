import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { ClientLog } from '../http/client-log.js'
import { isDigest } from '../oci/digest.js'
import type { StoreAdmin } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import { isAdminRequest } from './admin-request.js'
import { sendJson, sendText } from '../http/respond.js'

/** What the admin routes use of the store (its admin role; a fake in unit tests). */
export type AdminStore = Pick<StoreAdmin, 'space' | 'clear' | 'evict' | 'setPinned' | 'size'>

/** What the admin routes use of the stats (Stats; a fake in unit tests). */
export type AdminStats = Pick<Stats, 'snapshot'> & { registry: Pick<Stats['registry'], 'metrics' | 'contentType'> }

export interface AdminRoutesInit {
  store: AdminStore
  stats: AdminStats
  adminToken: string
  isReady: () => boolean
  /** This node in the swarm (GET /api/p2p); undefined when CACHE_ENABLE_P2P=false. */
  p2p?: () => P2pInfo
  /** Registry clients seen (GET /api/cache/clients). */
  clients: ClientLog
  /** The proxy's CA certificate, PEM (GET /ca.crt); undefined when the proxy is off (CACHE_PROXY_ADDR unset). */
  proxyCa?: string | undefined
  /** The proxy's store of content read with clients' own credentials: emptied with the cache. */
  privateStore?: Pick<StoreAdmin, 'clear'> | undefined
  log: Logger
}

export interface P2pInfo {
  peerId: string
  addrs: string[]
  peers: Array<{ peerId: string, addrs: string[] }>
  /** Blobs being served to peers right now. */
  uploads: number
  /** Peers in the DHT routing table. */
  routingTable: number
  /** ISO time a peer last answered a miss, or null. */
  lastPeerHitAt: string | null
  /** The data channel's TCP port (CACHE_P2P_DATA_PORT), null when it is off. */
  dataPort: number | null
  /** Peers whose data channel port this node could not reach lately: their blobs come over libp2p. */
  dataUnreachable: string[]
}

/** Stats, metrics, health, and the admin calls under /api/cache (docs/design.md §3.3). */
export class AdminRoutes {
  constructor (private readonly init: AdminRoutesInit) {}

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const { store, stats } = this.init
    const path = url.pathname
    const method = req.method ?? 'GET'
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' })
      return true
    }
    if (path === '/readyz') {
      // A full store still serves (hits, and misses streamed through): ready, and saying so.
      const ready = this.init.isReady()
      const { full, free } = await store.space()
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'starting', store: { full, free_bytes: free ?? null } })
      return true
    }
    if (path === '/metrics') {
      await store.space()
      sendText(res, 200, await stats.registry.metrics(), stats.registry.contentType)
      return true
    }
    if (path === '/api/cache/stats' && (method === 'GET' || method === 'HEAD')) {
      await store.space()
      sendJson(res, 200, stats.snapshot())
      return true
    }
    if (path === '/api/cache/clients' && (method === 'GET' || method === 'HEAD')) {
      sendJson(res, 200, { clients: this.init.clients.snapshot() })
      return true
    }
    if (path === '/ca.crt' && (method === 'GET' || method === 'HEAD')) {
      // What clients of the proxy must trust (issue 24); PEM, as update-ca-certificates takes it.
      if (this.init.proxyCa === undefined) {
        sendJson(res, 404, { error: 'the proxy is off (CACHE_PROXY_ADDR unset): there is no CA to trust' })
      } else sendText(res, 200, this.init.proxyCa, 'application/x-pem-file')
      return true
    }
    if (path === '/api/p2p' && (method === 'GET' || method === 'HEAD')) {
      const info = this.init.p2p?.()
      if (info === undefined) sendJson(res, 404, { error: 'the peer-to-peer layer is off (CACHE_ENABLE_P2P=false)' })
      else sendJson(res, 200, info)
      return true
    }
    if (path !== '/api/cache' && !path.startsWith('/api/cache/')) return false

    if (!isAdminRequest(req, this.init.adminToken)) {
      sendJson(res, 403, { error: 'admin calls are allowed from loopback, or with Authorization: Bearer <CACHE_ADMIN_TOKEN>' })
      return true
    }
    if (path === '/api/cache' && method === 'DELETE') {
      const removed = await store.clear() + (await this.init.privateStore?.clear() ?? 0)
      this.init.log.info({ removed }, 'store cleared on request')
      sendJson(res, 200, { removed, current_size: store.size })
      return true
    }
    if (path === '/api/cache/gc' && method === 'POST') {
      const removed = await store.evict(true)
      sendJson(res, 200, { removed, current_size: store.size })
      return true
    }
    const pin = /^\/api\/cache\/pins\/(.+)$/.exec(path)
    if (pin !== null && (method === 'PUT' || method === 'DELETE')) {
      let digest: string
      try {
        digest = decodeURIComponent(pin[1] ?? '')
      } catch {
        digest = pin[1] ?? ''
      }
      if (!isDigest(digest)) {
        sendJson(res, 400, { error: `invalid digest "${digest.slice(0, 100)}": expected sha256:<64 hex>` })
        return true
      }
      const found = await store.setPinned(digest, method === 'PUT')
      sendJson(res, found ? 200 : 404, found ? { digest, pinned: method === 'PUT' } : { error: `${digest} is not in the store` })
      return true
    }
    sendJson(res, 404, { error: `no such endpoint ${method} ${path}` })
    return true
  }
}
