import { randomBytes } from 'node:crypto'
import type { AbortOptions, Connection, PrivateKey } from '@libp2p/interface'
import { KAD_PROTOCOL } from '../p2p/constants.js'
import { recordCid } from '../p2p/content-id.js'
import { createP2pNode, type P2pNode } from '../p2p/node.js'
import { routingTableSize } from '../p2p/routing-table.js'
import { fail, ok, skip, type Finding } from './finding.js'
import { DHT_TIMEOUT_MS, ROUTING_TABLE_RETRY_MS } from './constants.js'

export interface DhtCheckInit {
  probe: P2pNode
  /** Connections to bootstrap peers that passed their checks. */
  connections: Connection[]
  /** A second, throwaway identity for the node that looks the probe record up. */
  finderKey: PrivateKey
  swarmKey: Uint8Array | undefined
  signal: AbortSignal
}

/**
 * The DHT round trip: this node provides a random probe key, and a second node that knows
 * only a bootstrap peer finds it there. That proves the record reached the peer's DHT and can
 * be found through it, which is exactly what a blob lookup needs.
 */
export async function checkDht (init: DhtCheckInit): Promise<Finding[]> {
  const { probe, connections } = init
  if (connections.length === 0) return [skip('dht.routing-table', 'no bootstrap peer connected; nothing to check the DHT against')]
  const signal = AbortSignal.any([init.signal, AbortSignal.timeout(DHT_TIMEOUT_MS)])
  const size = await routingTableAfterConnect(probe, connections, { signal })
  if (size === 0) {
    // What identify recorded for each peer tells a peer without the protocol from one the DHT didn't take in.
    const peers = await Promise.all(connections.map(async c => {
      const protocols = await probe.peerStore.get(c.remotePeer).then(p => p.protocols, (): string[] => [])
      return { peerId: c.remotePeer.toString(), status: c.status, kad: protocols.includes(KAD_PROTOCOL) }
    }))
    return [
      fail(
        'dht.routing-table',
        "routing table empty: the connected peers did not join this node's DHT (/p2p-cache/kad/1.0.0)",
        'run the same p2p-cache version on every node; peers must be p2p-cache sidecars, not other libp2p nodes',
        { peers }
      )
    ]
  }
  const out: Finding[] = [ok('dht.routing-table', `${size} peer${size === 1 ? '' : 's'} in the routing table`, { size })]
  const cid = recordCid(`p2p-cache diagnose probe ${randomBytes(16).toString('hex')}`)
  const started = performance.now()
  let finder: P2pNode | undefined
  try {
    await probe.contentRouting.provide(cid, { signal })
    const provided = performance.now() - started
    finder = await createP2pNode({
      privateKey: init.finderKey,
      listen: [],
      announce: [],
      bootstrap: [],
      mdns: false,
      swarmKey: init.swarmKey
    })
    const via = connections[0] as Connection
    // remoteAddr already ends in /p2p/<id>.
    await finder.dial(via.remoteAddr, { signal })
    await waitForTable(finder, { signal })
    const looked = performance.now()
    for await (const event of finder.services.dht.findProviders(cid, { signal })) {
      if (event.name === 'PROVIDER' && event.providers.some(p => p.id.equals(probe.peerId))) {
        out.push(
          ok(
            'dht.round-trip',
            `a node that knows only ${via.remotePeer.toString().slice(0, 12)}… found this node's probe record: provide ${
              provided.toFixed(0)
            } ms, find ${(performance.now() - looked).toFixed(0)} ms`,
            { provideMs: Math.round(provided), findMs: Math.round(performance.now() - looked), via: via.remotePeer.toString() }
          )
        )
        return out
      }
    }
    out.push(
      fail(
        'dht.round-trip',
        'the probe record this node provided could not be found through its bootstrap peer',
        "check that every node runs the same p2p-cache version and that the bootstrap peers' own `p2p-cache diagnose` passes"
      )
    )
  } catch (err) {
    out.push(
      fail(
        'dht.round-trip',
        `DHT round trip failed: ${(err as Error).message}`,
        "check that every node runs the same p2p-cache version and that the bootstrap peers' own `p2p-cache diagnose` passes"
      )
    )
  } finally {
    await Promise.resolve(finder?.stop()).catch(() => {})
  }
  return out
}

/**
 * kad-dht adds a connected peer once identify has run and its own PING of that peer answers;
 * a PING that fails is not retried (seen on a loaded 2-core CI host: connection open, the peer
 * runs the protocol, table empty). After a first wait, redial each peer once: the fresh
 * identify queues the check again.
 */
async function routingTableAfterConnect (probe: P2pNode, connections: Connection[], options: Required<AbortOptions>): Promise<number> {
  const { signal } = options
  const first = await waitForTable(probe, { signal: AbortSignal.any([signal, AbortSignal.timeout(ROUTING_TABLE_RETRY_MS)]) })
  if (first > 0 || signal.aborted) return first
  for (const c of connections) {
    await c.close().catch(() => {})
    await probe.dial(c.remoteAddr, { signal }).catch(() => {})
  }
  return await waitForTable(probe, { signal })
}

/** The routing table fills right after identify; wait for it rather than sleep. */
async function waitForTable (node: P2pNode, options: Required<AbortOptions>): Promise<number> {
  const { signal } = options
  while (!signal.aborted) {
    const size = routingTableSize(node)
    if (size > 0) return size
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return routingTableSize(node)
}
