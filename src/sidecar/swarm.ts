import type { PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { P2pInfo } from '../admin/admin-routes.js'
import type { ApiRecords } from '../apicache/records.js'
import type { Config } from '../config/options.js'
import { EXIT_USAGE, P2pCacheError } from '../errors/p2p-cache-error.js'
import type { RecordKey } from '../keys/record-key.js'
import type { Stats } from '../metrics/stats.js'
import type { Digest } from '../oci/digest.js'
import type { TagKey } from '../oci/tag-key.js'
import { DataListenError, dataChannelAddress } from '../p2p/data/server.js'
import { Swarm, type SwarmComponents } from '../p2p/swarm.js'
import type { SwarmRecords } from '../records/swarm-records.js'
import type { TagCache } from '../resolver/tag-cache.js'
import type { BlobStore } from '../store/blob-store.js'

/** The peer-to-peer node could not start (a port taken, an address not of this host). Exit code 2. */
export class P2pStartError extends P2pCacheError {
  constructor (message: string) {
    super(message, { exitCode: EXIT_USAGE })
  }
}

/** What the swarm serves to peers from the parts above it. */
export type SwarmParts =
  & { tags: TagCache, apiRecords: ApiRecords }
  & Pick<SwarmComponents, 'records' | 'inProgress' | 'downloading' | 'hold'>

/**
 * Starts the libp2p node, its DHT and its data channel; warns when the swarm is open (no
 * CACHE_SWARM_KEY) on an address other hosts reach.
 * @throws P2pStartError, one line that names the port and the fix
 */
export async function startSwarm (
  config: Config,
  privateKey: PrivateKey,
  store: BlobStore,
  stats: Stats,
  parts: SwarmParts,
  log: Logger
): Promise<Swarm> {
  const exposed = config.listenAddrs.some(ma => !/^\/ip[46]\/(127\.|::1\/)/.test(ma.toString()))
  if (config.swarmKey === undefined && exposed) {
    log.warn(
      { listen: config.listenAddrs.map(String) },
      'open swarm: any host that reaches the P2P port can join and fetch cached blobs by digest; set CACHE_SWARM_KEY (p2p-cache swarm-key) to restrict it to your runners'
    )
  }
  try {
    return await Swarm.start({
      privateKey,
      listen: config.listenAddrs,
      announce: config.announceAddrs,
      bootstrap: config.bootstrapPeers,
      mdns: config.mdns,
      swarmKey: config.swarmKey,
      maxUploads: config.maxUploads,
      maxUploadRate: config.p2pMaxUploadRate,
      data: dataChannelAddress(config.listenAddrs, config.p2pDataPort)
    }, {
      store,
      stats,
      tags: async key => await parts.tags.lookup(key),
      apiRecords: async key => await parts.apiRecords.forPeer(key),
      records: parts.records,
      inProgress: parts.inProgress,
      downloading: parts.downloading,
      hold: parts.hold,
      log
    })
  } catch (err) {
    throw p2pStartError(err as Error, config)
  }
}

/**
 * One line for a node that could not listen: libp2p's message spans lines (an address each, its
 * own advice, a stack). A port in use names the port and the usual holder on a runner host:
 * another sidecar, whose data channel takes its P2P port + 1.
 */
export function p2pStartError (err: Error, config: Pick<Config, 'listenAddrs'>): P2pStartError {
  if (err instanceof DataListenError) return new P2pStartError(err.message)
  const message = err.message
  const listen = config.listenAddrs.join(', ')
  const inUse = /EADDRINUSE[^\n]*?(\S+):(\d+)\s*$/m.exec(message)
  if (inUse !== null) {
    const port = Number(inUse[2])
    return new P2pStartError(
      `could not start the peer-to-peer node: TCP port ${port} (${inUse[1]}) is already in use. ` +
        `Another p2p-cache sidecar on this host may hold it, as its P2P port or as its data channel, which takes the P2P port + 1 ` +
        `(a sidecar with CACHE_P2P_PORT=${port - 1} holds ${port} too). ` +
        `Stop it, or give this sidecar ports two apart from the other's (CACHE_P2P_PORT=${
          port + 2
        }, or CACHE_LISTEN_ADDRS), or run without peers with CACHE_ENABLE_P2P=false`
    )
  }
  // The first line of each address's failure, without libp2p's advice or a stack.
  const reasons = message.split('\n').map(l => l.trim()).filter(l =>
    l !== '' && !l.startsWith('at ') && !/faultTolerance|If you wish/i.test(l)
  )
  const hint = /EACCES|EADDRNOTAVAIL/.test(message)
    ? 'Pick a free port or an address of this host with CACHE_LISTEN_ADDRS (or CACHE_P2P_PORT when CACHE_LISTEN_ADDRS is unset), or run without peers with CACHE_ENABLE_P2P=false'
    : 'Run without peers with CACHE_ENABLE_P2P=false while this is investigated'
  return new P2pStartError(`could not start the peer-to-peer node on ${listen}: ${reasons.join(' ')}. ${hint}`)
}

/** GET /api/p2p's answer, read when asked. */
export function p2pInfo (swarm: Swarm, stats: Stats): () => P2pInfo {
  return () => ({
    peerId: swarm.peerId.toString(),
    addrs: swarm.addrs(),
    peers: swarm.peers(),
    uploads: swarm.uploads,
    routingTable: swarm.routingTableSize(),
    lastPeerHitAt: stats.lastPeerHitAt?.toISOString() ?? null,
    dataPort: swarm.dataPort ?? null,
    dataUnreachable: swarm.dataUnreachablePeers()
  })
}

/** What a (re)started node announces: every stored blob, then the tags and records it resolved. */
export async function* storedKeys (store: BlobStore, tags: TagCache, records: SwarmRecords): AsyncGenerator<Digest | TagKey | RecordKey> {
  for await (const [digest] of store.entries()) yield digest
  yield* tags.swarmKeys()
  yield* records.swarmKeys()
}
