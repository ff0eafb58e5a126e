import './polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { VERSION } from '../version/version.js'
import { pinnedPeerId } from './addresses.js'
import { guardPnetCipher } from './pnet-cipher.js'
import { skipRepeatedProtocolMerges } from './protocol-merges.js'
import {
  DIAL_TIMEOUT_MS,
  KAD_PROTOCOL,
  PING_MIN_TIMEOUT_MS,
  PROVIDE_VALIDITY_MS,
  PROVIDERS_CLEANUP_S,
  REPROVIDE_INTERVAL_MS,
  REPROVIDE_THRESHOLD_MS
} from './constants.js'

export interface P2pNodeInit {
  privateKey: PrivateKey
  listen: Multiaddr[]
  announce: Multiaddr[]
  bootstrap: Multiaddr[]
  mdns: boolean
  /** pnet key in swarm.key form; undefined = open swarm. */
  swarmKey: Uint8Array | undefined
}

// A type alias, not an interface: libp2p's ServiceMap needs an index signature.
export type P2pServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
}

export type P2pNode = Libp2p<P2pServices>

/**
 * A libp2p node set for a private CI swarm (docs/design.md §3.4). kad-dht's defaults are tuned for the
 * public IPFS network and leave a private one dead: it would stay a client until it saw a
 * public address, and it would drop every 10.x/172.x/127.x address it learns.
 */
export async function createP2pNode (init: P2pNodeInit): Promise<P2pNode> {
  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  // @libp2p/bootstrap needs the peer ID; BootstrapDialer dials the entries without one.
  const pinned = init.bootstrap.filter(ma => pinnedPeerId(ma) !== undefined)
  if (pinned.length > 0) {
    // timeout 0: dial at once (the default waits a second); retries are BootstrapDialer's job.
    peerDiscovery.push(bootstrap({ list: pinned.map(ma => ma.toString()), timeout: 0 }))
  }
  if (init.mdns) peerDiscovery.push(mdns())
  // pnet's cipher crashes the process under load without it (see pnet-cipher.ts).
  if (init.swarmKey !== undefined) guardPnetCipher()
  const node = await createLibp2p({
    privateKey: init.privateKey,
    // What identify tells peers: `diagnose` recognises a p2p-cache node (and its version) by it.
    nodeInfo: { name: 'p2p-cache', version: VERSION, userAgent: `p2p-cache/${VERSION} node/${process.versions.node}` },
    addresses: {
      listen: init.listen.map(ma => ma.toString()),
      announce: init.announce.map(ma => ma.toString())
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(init.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: init.swarmKey }) } : {}),
    peerDiscovery,
    connectionManager: { dialTimeout: DIAL_TIMEOUT_MS },
    // libp2p aborts a connection whose keep-alive ping is late (5 s at least by default): a
    // loaded holder lost every connection that way, and its leases with them (issue 23).
    connectionMonitor: { pingTimeout: { minTimeout: PING_MIN_TIMEOUT_MS } },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: KAD_PROTOCOL,
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        providers: { provideValidity: PROVIDE_VALIDITY_MS / 1000, cleanupInterval: PROVIDERS_CLEANUP_S },
        reprovide: { interval: REPROVIDE_INTERVAL_MS, validity: PROVIDE_VALIDITY_MS, threshold: REPROVIDE_THRESHOLD_MS }
      })
    }
  })
  skipRepeatedProtocolMerges(node.peerStore, node)
  return node
}
