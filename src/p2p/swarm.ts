import type { AbortOptions, PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { StoreReader } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import { Announcer, type AnnounceOptions } from './announcer.js'
import { pinnedPeerId } from './addresses.js'
import { BootstrapDialer } from './bootstrap-dialer.js'
import { keyCid } from './content-id.js'
import { TtlSet } from '../clock/ttl-set.js'
import {
  fetchFromPeer,
  fetchPieceHashes,
  type DataChannelUse,
  type FetchOptions,
  type PeerBlob,
  type PeerRef,
  type PieceHashAnswer
} from './fetch/client.js'
import { DataServer, type DataServerInit } from './data/server.js'
import { DATA_UNREACHABLE_MS } from './data/constants.js'
import type { ApiRecordAnswer, FetchRequest, RecordAnswer, TagAnswer } from './fetch/frames.js'
import type { RecordKey } from '../keys/record-key.js'
import type { ApiKey } from '../keys/api-key.js'
import type { TagKey } from '../oci/tag-key.js'
import { FetchServer, type GrowingBlob } from './fetch/server.js'
import { ClaimService, type ClaimOptions, type CoordinatedAnswer } from './claim/service.js'
import type { ClaimRequest } from './claim/frames.js'
import { DialbackServer } from './dialback.js'
import { HoldService, type HoldHandler } from './hold/service.js'
import type { HoldAnswer, HoldRequest } from './hold/frames.js'
import { HOLD_PROTOCOL } from './hold/constants.js'
import { createP2pNode, type P2pNode, type P2pNodeInit } from './node.js'
import { routingTableSize } from './routing-table.js'
import { DENY_MS } from './constants.js'

export interface SwarmInit extends P2pNodeInit {
  /** Blobs served to peers at once (CACHE_MAX_UPLOADS). */
  maxUploads: number
  /** Bytes per second served to peers in all (CACHE_P2P_MAX_UPLOAD_RATE); undefined = no cap. */
  maxUploadRate?: number | undefined
  /** The data channel's listener (CACHE_P2P_DATA_PORT); undefined = off, every byte over libp2p. */
  data?: DataServerInit | undefined
}

export interface SwarmComponents {
  store: Pick<StoreReader, 'stat' | 'openRead'>
  stats: Stats
  /** Answers peers' tag keys from this node's tag cache. */
  tags: (key: TagKey) => Promise<TagAnswer | undefined>
  /** Answers peers' API keys from this node's API cache. */
  apiRecords: (key: ApiKey) => Promise<ApiRecordAnswer | undefined>
  /** Answers peers' record keys (SwarmRecords) of the kinds this node shares. */
  records: (key: RecordKey) => Promise<RecordAnswer | undefined>
  /** This node's download of a digest in progress, served to peers as it arrives. */
  inProgress: (digest: Digest, options: Required<AbortOptions>) => Promise<GrowingBlob | 'pending' | undefined>
  /** Blob downloads running in this node now (announcements wait while there are any). */
  downloading?: () => number
  /** Keeps what a peer asks this node to hold (replicas of pushes); undefined = refuse. */
  hold?: HoldHandler | undefined
  log: Logger
}

export interface PeerSummary {
  peerId: string
  addrs: string[]
}

/**
 * This node's part in the swarm: the libp2p node, the fetch protocol server, the announcer and
 * the bootstrap dialer, behind the few calls the resolver and the HTTP routes need.
 */
export class Swarm {
  readonly peerId: PeerId
  private readonly denied = new TtlSet(DENY_MS)
  /** Peers whose data channel port this node could not reach: their bytes come over libp2p. */
  private readonly dataUnreachable = new TtlSet(DATA_UNREACHABLE_MS)
  private readonly dataUse: DataChannelUse = {
    wanted: peer => !this.dataUnreachable.has(peer),
    unreachable: (peer, err) => {
      this.dataUnreachable.add(peer)
      this.log.warn(
        { peer, err: err.message, forMs: DATA_UNREACHABLE_MS },
        "the peer's data channel port is unreachable from here: its blobs come over the libp2p connection (slower) for a while. Open or publish its CACHE_P2P_DATA_PORT (TCP, the P2P port + 1 by default)"
      )
    }
  }

  private constructor (
    readonly node: P2pNode,
    private readonly server: FetchServer,
    private readonly data: DataServer | undefined,
    private readonly dialback: DialbackServer,
    private readonly claims: ClaimService,
    private readonly holds: HoldService,
    private readonly announcer: Announcer,
    private readonly dialer: BootstrapDialer,
    private readonly log: Logger
  ) {
    this.peerId = node.peerId
  }

  static async start (init: SwarmInit, components: SwarmComponents): Promise<Swarm> {
    const log = components.log
    const self = peerIdFromPrivateKey(init.privateKey)
    // One bootstrap list for every service of a compose file names this node too: skip itself.
    const bootstrap = init.bootstrap.filter(ma => pinnedPeerId(ma) !== self.toString())
    const node = await createP2pNode({ ...init, bootstrap })
    const data = init.data === undefined ? undefined : new DataServer({ log }, init.data)
    const server = new FetchServer(
      {
        node,
        store: components.store,
        stats: components.stats,
        tags: components.tags,
        apiRecords: components.apiRecords,
        records: components.records,
        inProgress: components.inProgress,
        data,
        log
      },
      { maxUploads: init.maxUploads, maxUploadRate: init.maxUploadRate }
    )
    const dialback = new DialbackServer({ node, log })
    const claims = new ClaimService({
      node,
      log,
      stored: async digest => await components.store.stat(digest) !== undefined
    })
    const holds = new HoldService({ node, hold: components.hold, log })
    try {
      await data?.start()
      await server.start()
      await dialback.start()
      await claims.start()
      await holds.start()
    } catch (err) {
      await data?.stop()
      await node.stop()
      throw err
    }
    const announcer = new Announcer({ node, log, busy: () => server.activeUploads > 0 || (components.downloading?.() ?? 0) > 0 })
    const dialer = new BootstrapDialer({ node, log }, bootstrap)
    dialer.start()
    const swarm = new Swarm(node, server, data, dialback, claims, holds, announcer, dialer, log)
    log.info({ peerId: self.toString(), addrs: swarm.addrs(), dataPort: data?.port, bootstrap: bootstrap.map(String) }, 'p2p node started')
    return swarm
  }

  /** Addresses this node advertises, with /p2p/<id>. */
  addrs (): string[] {
    return this.node.getMultiaddrs().map(String)
  }

  peers (): PeerSummary[] {
    const byPeer = new Map<string, string[]>()
    for (const c of this.node.getConnections()) {
      const id = c.remotePeer.toString()
      byPeer.set(id, [...(byPeer.get(id) ?? []), c.remoteAddr.toString()])
    }
    return [...byPeer].map(([peerId, addrs]) => ({ peerId, addrs }))
  }

  /** The data channel's TCP port, when it is on. */
  get dataPort (): number | undefined {
    return this.data?.port
  }

  /** Peers whose data channel port this node could not reach in the last DATA_UNREACHABLE_MS. */
  dataUnreachablePeers (): string[] {
    return this.dataUnreachable.list()
  }

  /** Blobs being served to peers right now. */
  get uploads (): number {
    return this.server.activeUploads
  }

  routingTableSize (): number {
    return routingTableSize(this.node)
  }

  peersConnected (): number {
    return this.node.getPeers().length
  }

  /**
   * Peers that announced `key` (a digest or a tag key), as the DHT finds them; never this node
   * or a denied peer. An empty routing table is an immediate miss instead of a query that waits
   * for a peer.
   */
  async *providers (key: Digest | TagKey | ApiKey | RecordKey, options: AbortOptions = {}): AsyncGenerator<PeerRef> {
    if (routingTableSize(this.node) === 0) return
    const seen = new Set<string>()
    // The DHT itself, not libp2p's content-routing facade, which merges every router and
    // writes each result to the peer store before yielding it.
    for await (const event of this.node.services.dht.findProviders(keyCid(key), { signal: options.signal })) {
      if (event.name !== 'PROVIDER') continue
      for (const provider of event.providers) {
        const id = provider.id.toString()
        if (provider.id.equals(this.peerId) || seen.has(id) || this.denied.has(id)) continue
        seen.add(id)
        yield { id: provider.id, multiaddrs: provider.multiaddrs }
      }
    }
  }

  async fetch (peer: PeerRef, request: FetchRequest, opts: FetchOptions): Promise<PeerBlob> {
    return await fetchFromPeer(this.node, peer, request, opts, this.data === undefined ? undefined : this.dataUse)
  }

  /** Piece hashes of `key` from `peer`'s copy, from piece `from` on (see fetchPieceHashes). */
  async pieceHashes (peer: PeerRef, key: Digest, from: number, opts: FetchOptions): Promise<PieceHashAnswer> {
    return await fetchPieceHashes(this.node, peer, key, from, opts)
  }

  /**
   * Asks the coordinator of `request.key` who fetches it (see ClaimService.ask); undefined when
   * no coordinator answered.
   */
  async claim (request: ClaimRequest, options: ClaimOptions): Promise<CoordinatedAnswer | undefined> {
    return await this.claims.ask(request, options)
  }

  /**
   * Connected peers that keep replicas (they speak the hold protocol, as identify said), by
   * peer ID; never a denied one.
   */
  async holders (): Promise<string[]> {
    const out: string[] = []
    for (const id of this.node.getPeers()) {
      const info = await this.node.peerStore.get(id).catch(() => undefined)
      if (info?.protocols.includes(HOLD_PROTOCOL) === true && !this.denied.has(id.toString())) out.push(id.toString())
    }
    return out
  }

  /** Asks `peer` to hold `request` (see HoldService.ask). */
  async hold (peer: string, request: HoldRequest, options: Required<AbortOptions>): Promise<HoldAnswer> {
    return await this.holds.ask(peer, request, options)
  }

  /** Provides `keys` on the DHT now and waits for it (see Announcer.provideNow). */
  async provideNow (keys: Array<Digest | RecordKey>, options: AbortOptions = {}): Promise<void> {
    await this.announcer.provideNow(keys, options)
  }

  /** The peer sent bytes that did not match: don't ask it again for a while. */
  deny (peer: string, reason: string): void {
    this.denied.add(peer)
    this.log.warn({ peer, reason }, 'peer deny-listed')
  }

  isDenied (peer: string): boolean {
    return this.denied.has(peer)
  }

  /** Provides `key` on the DHT; see Announcer.announce. */
  announce (key: Digest | TagKey | ApiKey | RecordKey, opts?: AnnounceOptions): void {
    this.announcer.announce(key, opts)
  }

  announceAll (keys: AsyncIterable<Digest | TagKey | RecordKey>): void {
    this.announcer.announceAll(keys)
  }

  forget (key: Digest | TagKey | ApiKey | RecordKey): void {
    this.announcer.forget(key)
  }

  async stop (): Promise<void> {
    await this.dialer.stop()
    await this.announcer.stop()
    await this.server.stop()
    await this.data?.stop()
    await this.dialback.stop()
    await this.claims.stop()
    await this.holds.stop()
    await this.node.stop()
  }
}
