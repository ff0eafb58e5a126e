import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { AdminRoutes, type AdminStats, type AdminStore, type P2pInfo } from '../../../src/admin/admin-routes.js'
import { ClientLog } from '../../../src/http/client-log.js'
import type { StatsSnapshot } from '../../../src/metrics/stats.js'
import type { Digest } from '../../../src/oci/digest.js'
import { silentLog } from '../fakes/log.js'

const DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' as Digest
const TOKEN = 'fleet-admin-token'

/** The store as the admin routes see it, recording what it was asked. */
class FakeStore implements AdminStore {
  size = 1234
  full = false
  free: number | undefined = 5_000_000
  pinned = new Map<Digest, boolean>([[DIGEST, false]])
  calls: string[] = []

  async space (): Promise<{ full: boolean, free: number | undefined }> {
    this.calls.push('space')
    return { full: this.full, free: this.free }
  }

  async clear (): Promise<number> {
    this.calls.push('clear')
    this.size = 0
    return 7
  }

  async evict (force = false): Promise<number> {
    this.calls.push(`evict:${String(force)}`)
    return 2
  }

  async setPinned (digest: Digest, pinned: boolean): Promise<boolean> {
    this.calls.push(`pin:${digest}:${String(pinned)}`)
    if (!this.pinned.has(digest)) return false
    this.pinned.set(digest, pinned)
    return true
  }
}

const fakeStats: AdminStats = {
  snapshot: () => ({ hits: 3, misses: 1, current_size: 1234 }) as unknown as StatsSnapshot,
  registry: {
    metrics: async () => '# HELP p2p_cache_hits_total Hits\np2p_cache_hits_total 3\n',
    contentType: 'text/plain; version=0.0.4; charset=utf-8'
  }
}

/** What sendJson/sendText wrote. */
interface Answer {
  status: number
  headers: Record<string, unknown>
  body: string
  json: () => Record<string, unknown>
}

function call (
  routes: AdminRoutes,
  method: string,
  path: string,
  opts: { remote?: string, authorization?: string } = {}
): Promise<{ handled: boolean, answer: Answer | undefined }> {
  const req = {
    method,
    url: path,
    headers: opts.authorization !== undefined ? { authorization: opts.authorization } : {},
    socket: { remoteAddress: opts.remote ?? '127.0.0.1' }
  } as unknown as IncomingMessage
  let answer: Answer | undefined
  const res = {
    writeHead (status: number, headers: Record<string, unknown>) {
      answer = { status, headers, body: '', json: () => JSON.parse(answer?.body ?? '') as Record<string, unknown> }
      return this
    },
    end (text: string) {
      if (answer !== undefined) answer.body = text
    }
  } as unknown as ServerResponse
  return routes.handle(req, res, new URL(path, 'http://sidecar')).then(handled => ({ handled, answer }))
}

describe('AdminRoutes: health, stats and the admin calls (docs/design.md §3.3)', () => {
  let store: FakeStore
  let ready: boolean
  let p2p: (() => P2pInfo) | undefined
  let clients: ClientLog
  let routes: AdminRoutes

  beforeEach(() => {
    store = new FakeStore()
    ready = true
    p2p = undefined
    clients = new ClientLog()
    routes = new AdminRoutes({
      store,
      stats: fakeStats,
      adminToken: TOKEN,
      isReady: () => ready,
      clients,
      log: silentLog(),
      get p2p () {
        return p2p
      }
    })
  })

  it('/healthz is 200 ok whatever the state', async () => {
    ready = false
    const { answer } = await call(routes, 'GET', '/healthz')
    assert.equal(answer?.status, 200)
    assert.deepEqual(answer?.json(), { status: 'ok' })
  })

  it('/readyz is 503 "starting" until ready, then 200; a full store is still ready, and says so', async () => {
    ready = false
    let { answer } = await call(routes, 'GET', '/readyz')
    assert.equal(answer?.status, 503)
    assert.equal(answer?.json().status, 'starting')
    ready = true
    store.full = true
    store.free = 0
    answer = (await call(routes, 'GET', '/readyz')).answer
    assert.equal(answer?.status, 200)
    assert.deepEqual(answer?.json(), { status: 'ready', store: { full: true, free_bytes: 0 } })
    store.free = undefined
    answer = (await call(routes, 'GET', '/readyz')).answer
    assert.deepEqual(answer?.json().store, { full: true, free_bytes: null }, 'unknown free space is null, not missing')
  })

  it("/metrics is the Prometheus text with its content type; the store's space is refreshed first", async () => {
    const { answer } = await call(routes, 'GET', '/metrics')
    assert.equal(answer?.status, 200)
    assert.equal(answer?.headers['content-type'], fakeStats.registry.contentType)
    assert.match(answer?.body ?? '', /^p2p_cache_hits_total 3$/m)
    assert.deepEqual(store.calls, ['space'])
  })

  it('/api/cache/stats and /api/cache/clients answer anyone, with no token', async () => {
    clients.note('docker/27.0')
    let { answer } = await call(routes, 'GET', '/api/cache/stats', { remote: '10.0.0.9' })
    assert.equal(answer?.status, 200)
    assert.equal(answer?.json().hits, 3)
    answer = (await call(routes, 'GET', '/api/cache/clients', { remote: '10.0.0.9' })).answer
    assert.equal(answer?.status, 200)
    assert.equal((answer?.json().clients as Record<string, { requests: number }> | undefined)?.docker?.requests, 1)
  })

  it("/api/p2p is 404 naming CACHE_ENABLE_P2P when the swarm is off, and the node's info when on", async () => {
    let { answer } = await call(routes, 'GET', '/api/p2p')
    assert.equal(answer?.status, 404)
    assert.match(String(answer?.json().error), /CACHE_ENABLE_P2P=false/)
    const info: P2pInfo = {
      peerId: '12D3KooWx',
      addrs: [],
      peers: [],
      uploads: 0,
      routingTable: 0,
      lastPeerHitAt: null,
      dataPort: null,
      dataUnreachable: []
    }
    p2p = () => info
    answer = (await call(routes, 'GET', '/api/p2p')).answer
    assert.equal(answer?.status, 200)
    assert.deepEqual(answer?.json(), info)
  })

  it('passes on paths that are not its own', async () => {
    for (const path of ['/v2/', '/v2/library/alpine/manifests/latest', '/api/cachex', '/']) {
      const { handled, answer } = await call(routes, 'GET', path)
      assert.equal(handled, false, path)
      assert.equal(answer, undefined, path)
    }
  })

  it('a remote client without the token gets 403 saying how to be allowed, and nothing is cleared', async () => {
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      const { answer } = await call(routes, 'DELETE', '/api/cache', {
        remote: '10.0.0.9',
        ...(authorization !== undefined ? { authorization } : {})
      })
      assert.equal(answer?.status, 403, String(authorization))
      assert.match(String(answer?.json().error), /loopback, or with Authorization: Bearer <CACHE_ADMIN_TOKEN>/)
    }
    assert.deepEqual(store.calls, [])
  })

  it('a remote client with the token (any case of "bearer") may clear the store', async () => {
    const { answer } = await call(routes, 'DELETE', '/api/cache', { remote: '10.0.0.9', authorization: `bearer ${TOKEN}` })
    assert.equal(answer?.status, 200)
    assert.deepEqual(answer?.json(), { removed: 7, current_size: 0 })
    assert.deepEqual(store.calls, ['clear'])
  })

  it('with no token configured, remote admin calls are refused whatever they send', async () => {
    routes = new AdminRoutes({ store, stats: fakeStats, adminToken: '', isReady: () => true, clients, log: silentLog() })
    const { answer } = await call(routes, 'DELETE', '/api/cache', { remote: '10.0.0.9', authorization: 'Bearer ' })
    assert.equal(answer?.status, 403)
    assert.deepEqual(store.calls, [])
  })

  it('loopback callers (IPv4, IPv4-mapped, IPv6) need no token', async () => {
    for (const remote of ['127.0.0.1', '::ffff:127.0.0.1', '::1']) {
      const { answer } = await call(routes, 'POST', '/api/cache/gc', { remote })
      assert.equal(answer?.status, 200, remote)
    }
  })

  it('POST /api/cache/gc runs a forced eviction and reports it', async () => {
    const { answer } = await call(routes, 'POST', '/api/cache/gc')
    assert.deepEqual(answer?.json(), { removed: 2, current_size: 1234 })
    assert.deepEqual(store.calls, ['evict:true'])
  })

  it('PUT and DELETE /api/cache/pins/<digest> pin and unpin, with the digest URL-encoded or not', async () => {
    let { answer } = await call(routes, 'PUT', `/api/cache/pins/${encodeURIComponent(DIGEST)}`)
    assert.equal(answer?.status, 200)
    assert.deepEqual(answer?.json(), { digest: DIGEST, pinned: true })
    assert.equal(store.pinned.get(DIGEST), true)
    answer = (await call(routes, 'DELETE', `/api/cache/pins/${DIGEST}`)).answer
    assert.deepEqual(answer?.json(), { digest: DIGEST, pinned: false })
    assert.equal(store.pinned.get(DIGEST), false)
  })

  it('pinning a blob that is not stored is 404 naming it', async () => {
    const absent = `sha256:${'1'.repeat(64)}`
    const { answer } = await call(routes, 'PUT', `/api/cache/pins/${absent}`)
    assert.equal(answer?.status, 404)
    assert.equal(answer?.json().error, `${absent} is not in the store`)
  })

  it('a bad digest (or bad percent-encoding) is 400 and the store is not asked', async () => {
    for (const bad of ['sha256:abc', 'md5:0', '%E0%A4%A', '..%2F..%2Fetc%2Fpasswd']) {
      const { answer } = await call(routes, 'PUT', `/api/cache/pins/${bad}`)
      assert.equal(answer?.status, 400, bad)
      assert.match(String(answer?.json().error), /expected sha256:<64 hex>/)
    }
    assert.deepEqual(store.calls, [])
  })

  it('an unknown admin call is 404 naming the method and path', async () => {
    const { answer } = await call(routes, 'POST', '/api/cache/stats')
    assert.equal(answer?.status, 404)
    assert.equal(answer?.json().error, 'no such endpoint POST /api/cache/stats')
    const get = await call(routes, 'GET', '/api/cache/pins/x')
    assert.equal(get.answer?.status, 404, 'pins take PUT and DELETE only')
  })
})
