import type { P2pInfo } from '../admin/admin-routes.js'
import type { ClientSeen } from '../http/client-log.js'
import { fail, ok, skip, warn, type Finding } from './finding.js'
import { HTTP_TIMEOUT_MS } from './constants.js'
import { SidecarClient } from '../admin/client/client.js'

/** A running sidecar found on its HTTP address, with what its endpoints said. */
export interface LiveSidecar {
  url: string
  status: { healthz: number, readyz: number, v2: number }
  /** GET /api/p2p; undefined when the sidecar runs with CACHE_ENABLE_P2P=false. */
  p2p?: P2pInfo
  stats?: Record<string, unknown>
  /** GET /api/cache/clients: the registry clients it has seen, by family. */
  clients?: Record<string, ClientSeen>
  rttMs: number
}

/**
 * The sidecar answering at `url`, or undefined when nothing answers /healthz there. Through the
 * CLI's SidecarClient (bounded reads, one timeout policy): an endpoint that fails or does not
 * answer JSON is left out of what it reports.
 */
export async function findSidecar (url: string): Promise<LiveSidecar | undefined> {
  const client = new SidecarClient(url, { timeoutMs: HTTP_TIMEOUT_MS })
  const started = performance.now()
  let healthz
  try {
    healthz = await client.health()
  } catch {
    return undefined
  }
  const rttMs = performance.now() - started
  const [readyz, v2, p2p, stats, clients] = await Promise.all([
    client.ready().catch(() => undefined),
    client.probe('/v2/').catch(() => undefined),
    client.p2pInfo().catch(() => undefined),
    client.json<Record<string, unknown>>('/api/cache/stats').catch(() => undefined),
    client.json<{ clients: Record<string, ClientSeen> }>('/api/cache/clients').catch(() => undefined)
  ])
  return {
    url,
    rttMs,
    status: { healthz: healthz.status, readyz: readyz?.status ?? 0, v2: v2?.status ?? 0 },
    ...(p2p !== undefined ? { p2p } : {}),
    ...(stats !== undefined ? { stats } : {}),
    ...(clients?.clients !== undefined ? { clients: clients.clients } : {})
  }
}

/** The running sidecar's own view: endpoints, peers, routing table, last peer hit (docs/design.md §5, Spegel-style but with verdicts). */
/** What the running sidecar saw of peers' data channel ports; undefined for a sidecar that predates it. */
function dataChannelFinding (p2p: P2pInfo): Finding | undefined {
  if (p2p.dataPort === undefined || p2p.dataUnreachable === undefined) return undefined
  if (p2p.dataPort === null) {
    return warn(
      'sidecar.data',
      'the running sidecar has the data channel off: blobs of 1 MiB and more travel over the libp2p connection, several times slower',
      'unset CACHE_P2P_DATA_PORT=off (the default is auto: the P2P port + 1)'
    )
  }
  const unreachable = p2p.dataUnreachable
  if (unreachable.length > 0) {
    return warn(
      'sidecar.data',
      `the running sidecar could not reach the data channel port of ${unreachable.length} peer${unreachable.length === 1 ? '' : 's'} (${
        unreachable.join(', ')
      }): their blobs come over the libp2p connection, slower`,
      'on those hosts, open or publish TCP CACHE_P2P_DATA_PORT (9001 by default, the P2P port + 1) under the same number outside the container (-p 9001:9001); `p2p-cache diagnose` there checks listen.data',
      { dataPort: p2p.dataPort, unreachable }
    )
  }
  return ok(
    'sidecar.data',
    `the running sidecar's data channel listens on port ${p2p.dataPort}; no peer's data port was unreachable lately`,
    { dataPort: p2p.dataPort }
  )
}

export function liveFindings (url: string, live: LiveSidecar | undefined, explicit: boolean, bootstrapConfigured: boolean): Finding[] {
  if (live === undefined) {
    return explicit
      ? [
        fail(
          'sidecar.http',
          `no sidecar answers at ${url}`,
          'start it (`p2p-cache serve`), or pass the URL it listens on: `--http http://<host>:9080` (CACHE_HTTP_ADDR)',
          { url }
        )
      ]
      : [skip('sidecar.http', `no sidecar running at ${url}; checked the configuration only`)]
  }
  const out: Finding[] = []
  const { healthz, readyz, v2 } = live.status
  const facts = { url, ...live.status, rttMs: Math.round(live.rttMs * 10) / 10 }
  if (healthz !== 200 || v2 !== 200) {
    out.push(
      fail(
        'sidecar.http',
        `sidecar at ${url}: /healthz ${healthz}, /v2/ ${v2}`,
        'check its log; restart it; `--http` must point at its CACHE_HTTP_ADDR',
        facts
      )
    )
  } else if (readyz !== 200) {
    out.push(
      warn(
        'sidecar.http',
        `sidecar at ${url} is alive but not ready (/readyz ${readyz})`,
        'it is still starting (opening the store); check again, or read its log',
        facts
      )
    )
  } else {
    out.push(ok('sidecar.http', `sidecar at ${url} answers /healthz, /readyz and /v2/ (${facts.rttMs} ms)`, facts))
  }
  const p2p = live.p2p
  if (p2p === undefined) {
    out.push(
      warn(
        'sidecar.peers',
        'the running sidecar has the peer-to-peer layer off: it shares nothing with other runners',
        'start it with CACHE_ENABLE_P2P=true (the default)'
      )
    )
    return out
  }
  const peerHits = Number(live.stats?.peer_hits ?? 0)
  const lastPeerHit = p2p.lastPeerHitAt ?? null
  const peerFacts = {
    peerId: p2p.peerId,
    peers: p2p.peers.map(p => p.peerId),
    routingTable: p2p.routingTable ?? null,
    peerHits,
    lastPeerHit,
    addrs: p2p.addrs
  }
  if (p2p.peers.length === 0) {
    out.push(
      warn(
        'sidecar.peers',
        `the running sidecar (peer ${p2p.peerId}) has no peers: it only serves what it fetched itself`,
        bootstrapConfigured
          ? 'its bootstrap peers are unreachable: see the bootstrap checks above'
          : 'give it peers: CACHE_BOOTSTRAP_PEERS=<`p2p-cache id` of another runner>',
        peerFacts
      )
    )
  } else {
    out.push(
      ok(
        'sidecar.peers',
        `the running sidecar (peer ${p2p.peerId}) has ${p2p.peers.length} peer${p2p.peers.length === 1 ? '' : 's'}, ${
          p2p.routingTable ?? '?'
        } in its routing table; ${peerHits} peer hits${lastPeerHit !== null ? `, last at ${lastPeerHit}` : ''}`,
        peerFacts
      )
    )
  }
  const data = dataChannelFinding(p2p)
  if (data !== undefined) out.push(data)
  return out
}
