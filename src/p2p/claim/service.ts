import type { AbortOptions, Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { CID } from 'multiformats/cid'
import type { Logger } from 'pino'
import type { Digest } from '../../oci/digest.js'
import type { P2pNode } from '../node.js'
import { keyCid } from '../content-id.js'
import { MAX_REQUEST_BYTES } from '../constants.js'
import { multiaddr } from '@multiformats/multiaddr'
import {
  CLAIM_ANSWERED_MS,
  CLAIM_COORDINATORS_TRIED,
  CLAIM_MAX_STREAMS,
  CLAIM_PATIENT_ASKS,
  CLAIM_MAX_REDIRECTS,
  CLAIM_PROTOCOL,
  CLAIM_PROTOCOL_REDIRECT,
  CLAIM_PROTOCOL_SWARM,
  CLAIM_PROTOCOLS,
  CLAIM_SILENT_MS,
  CLAIM_TIMEOUT_MS
} from './constants.js'
import { TtlSet } from '../../clock/ttl-set.js'
import { closerPeer, coordinatorsOf, isCloser, keyKadId } from './distance.js'
import {
  decodeClaimAnswer,
  decodeClaimRequest,
  encodeClaimFrame,
  MAX_ANSWER_MESSAGE_CHARS,
  type ClaimAnswer,
  type ClaimRedirect,
  type ClaimRequest,
  type WireClaimAnswer
} from './frames.js'
import { ClaimTable, type Holder } from './table.js'
import { FrameError } from '../json-frame.js'
import { exchangeFrame } from '../frame-exchange.js'

export interface ClaimServiceComponents {
  node: P2pNode
  /**
   * Whether this node has `digest` stored (verified and committed). A download in progress does
   * not count: the coordinator is then in its own table (lease holder or receiver), and naming a
   * receiver as a committed holder let two receivers follow each other (a 20-host herd stalled
   * for a minute on such a cycle; issue 23).
   */
  stored: (digest: Digest) => Promise<boolean>
  log: Logger
}

/** The service's waits; the defaults are the constants (tests inject small ones). */
export interface ClaimServiceInit {
  /** One claim round trip, dial included (CLAIM_TIMEOUT_MS). */
  timeoutMs?: number
  /** Asks again of a slow coordinator that answered the key before (CLAIM_PATIENT_ASKS). */
  patientAsks?: number
}

/** A claim's options: `signal` ends it (only its abort throws); `to` pins the coordinator (a holder renewing with the one that granted its lease). */
export interface ClaimOptions extends Required<AbortOptions> {
  to?: string | undefined
}

export interface CoordinatedAnswer {
  answer: ClaimAnswer
  /** Peer ID of the coordinator that answered (this node's own when it is the closest). */
  coordinator: string
}

/** kad-dht internals this service reads: the routing table's XOR order and the provider store. */
interface KadInternals {
  routingTable?: { closestPeers?: (kadId: Uint8Array, options?: { count: number }) => PeerId[] }
  providers?: { getProviders?: (cid: CID, options?: { signal?: AbortSignal }) => Promise<PeerId[]> }
}

const MAX_ANSWER_BYTES = 8 * 1024

/**
 * Swarm-wide single-flight (issue 12): serves `/p2p-cache/claim/1.0.0` as the coordinator of the
 * keys closest to this node, and asks the coordinator of a key on behalf of the resolver.
 *
 * The coordinator of a key is the peer closest to it by XOR distance among this node, its
 * routing table and its connected peers that speak the protocol: the peers that hold the key's
 * provider records, so a claim is answered from the claim table, the coordinator's own copy and
 * those records in one round trip, without a DHT lookup. Views of the routing table differ while
 * it fills (a herd bootstrapped to one address): a node asked about a key it has no entry for
 * redirects the claim to a connected peer closer to the key (1.2.0), so the askers converge on
 * one coordinator. What still slips through costs a second fetch, never a wrong byte, since every
 * transfer is verified by digest.
 */
export class ClaimService {
  private readonly table = new ClaimTable()
  /**
   * `<key> <coordinator>` pairs where the coordinator did not answer a claim on the key: for a
   * while it is asked last about that key, so the next claim (after a named holder failed) goes
   * straight to the coordinator that answered, instead of costing CLAIM_TIMEOUT_MS again. Per
   * key: other keys keep their closest coordinator, a loaded one included (issue 23).
   */
  private readonly silent = new TtlSet(CLAIM_SILENT_MS)
  /** `<key> <coordinator>` pairs where the coordinator answered a claim on the key: it holds its leases (see CLAIM_PATIENT_ASKS). */
  private readonly answered = new TtlSet(CLAIM_ANSWERED_MS)
  private readonly timeoutMs: number
  private readonly patientAsks: number
  /** Connected peers that speak the claim protocol (libp2p's registrar keeps it current). */
  private readonly speakers = new Set<string>()
  /** Connected peers that speak 1.2.0: a claim is redirected only to them. */
  private readonly redirectable = new Set<string>()
  private readonly topologies: string[] = []
  /** A peer whose last connection closed has left: the leases it held end (see ClaimTable.dropHolder). */
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const peer = evt.detail.toString()
    const dropped = this.table.dropHolder(peer)
    if (dropped > 0) this.components.log.info({ peer, leases: dropped }, 'a claim holder disconnected; its leases end')
  }

  constructor (private readonly components: ClaimServiceComponents, init: ClaimServiceInit = {}) {
    this.timeoutMs = init.timeoutMs ?? CLAIM_TIMEOUT_MS
    this.patientAsks = init.patientAsks ?? CLAIM_PATIENT_ASKS
  }

  async start (): Promise<void> {
    const { node } = this.components
    node.addEventListener('peer:disconnect', this.onDisconnect)
    await node.handle(CLAIM_PROTOCOLS, (stream, connection) => {
      void this.serve(stream, connection)
    }, { maxInboundStreams: CLAIM_MAX_STREAMS, maxOutboundStreams: CLAIM_MAX_STREAMS })
    this.topologies.push(
      await node.register(CLAIM_PROTOCOL, {
        onConnect: peer => {
          this.speakers.add(peer.toString())
        },
        onDisconnect: peer => {
          this.speakers.delete(peer.toString())
        }
      }),
      await node.register(CLAIM_PROTOCOL_REDIRECT, {
        onConnect: peer => {
          this.redirectable.add(peer.toString())
        },
        onDisconnect: peer => {
          this.redirectable.delete(peer.toString())
        }
      })
    )
  }

  async stop (): Promise<void> {
    this.components.node.removeEventListener('peer:disconnect', this.onDisconnect)
    for (const id of this.topologies.splice(0)) this.components.node.unregister(id)
    await this.components.node.unhandle(CLAIM_PROTOCOLS)
  }

  /**
   * Sends `request` to the key's coordinator; when it can't be reached within CLAIM_TIMEOUT_MS
   * (dead, hung, partitioned), to the next closest, CLAIM_COORDINATORS_TRIED in all; that one
   * knows nothing of the leases the first granted, so the timeout allows for a loaded machine
   * (issue 23), and a coordinator that answered on the key before and is still connected is
   * loaded, not gone: it is asked again first (CLAIM_PATIENT_ASKS; a claim asked twice gets the
   * same decision), unless the claim reports it failed (it also stalled a transfer: hung). A
   * coordinator's redirect is followed (see `follow`). `options.to` pins the coordinator (a holder
   * renewing with the one that granted its lease). Undefined: nobody answered; the caller falls
   * back to a provider lookup. Throws only when `options.signal` aborts.
   */
  async ask (request: ClaimRequest, options: ClaimOptions): Promise<CoordinatedAnswer | undefined> {
    const { signal, to } = options
    const self = this.components.node.peerId.toString()
    const closest = to !== undefined ? [to] : await this.coordinators(request.key)
    const quiet = (c: string): boolean => this.silent.has(`${request.key} ${c}`)
    const candidates = [...closest.filter(c => !quiet(c)), ...closest.filter(quiet)]
    for (const coordinator of candidates.slice(0, CLAIM_COORDINATORS_TRIED)) {
      signal.throwIfAborted()
      if (coordinator === self) return { answer: await this.decide(self, request, { signal }), coordinator }
      for (let asks = 0;; asks++) {
        try {
          const answered = await this.follow(coordinator, request, { signal })
          this.answered.add(`${request.key} ${answered.coordinator}`)
          return answered
        } catch (err) {
          if (signal.aborted) throw err
          // Not one this claim reports failed: its transfer stalled too, so it is hung (SIGSTOP), not loaded.
          if (
            asks < this.patientAsks && request.failed?.includes(coordinator) !== true && this.holdsLeases(request.key, coordinator) &&
            isTimeout(err as Error)
          ) {
            this.components.log.info(
              { key: request.key, op: request.op, coordinator, asks: asks + 1 },
              'claim coordinator slow; it answered on this key before and is connected: asking it again'
            )
            continue
          }
          this.unreachable(request, coordinator, err as Error, 'asking the next closest peer')
          break
        }
      }
    }
    return undefined
  }

  /** `coordinator` answered a claim on `key` lately and this node is still connected to it. */
  private holdsLeases (key: Digest, coordinator: string): boolean {
    return this.answered.has(`${key} ${coordinator}`) && this.components.node.getConnections(peerIdFromString(coordinator)).length > 0
  }

  /**
   * Sends `request` to `coordinator` and follows its redirects, each to a peer strictly closer
   * to the key, CLAIM_MAX_REDIRECTS at most; past that, or when the peer redirected to does not
   * answer (or is known silent on the key, or is no closer), the last node that redirected is
   * asked to answer itself (`direct`). Throws what sending to `coordinator` throws.
   */
  private async follow (coordinator: string, request: ClaimRequest, options: Required<AbortOptions>): Promise<CoordinatedAnswer> {
    const { signal } = options
    const self = this.components.node.peerId.toString()
    const budget = (): AbortSignal => AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)])
    let at = coordinator
    let answer = await this.send(at, request, { signal: budget() })
    for (let hops = 0; answer.status === 'redirect'; hops++) {
      const next = answer.peer
      if (hops < CLAIM_MAX_REDIRECTS && next !== self && isCloser(request.key, next, at) && !this.silent.has(`${request.key} ${next}`)) {
        await this.learn(next, answer.addrs)
        try {
          answer = await this.send(next, request, { signal: budget() })
          at = next
          continue
        } catch (err) {
          if (signal.aborted) throw err
          this.unreachable(request, next, err as Error, `asking ${at}, which redirected to it, to answer itself`)
        }
      }
      answer = await this.send(at, { ...request, direct: true }, { signal: budget() })
      if (answer.status === 'redirect') throw new Error(`peer ${at} redirected a direct claim request`)
    }
    return { answer, coordinator: at }
  }

  private unreachable (request: ClaimRequest, coordinator: string, err: Error, next: string): void {
    this.silent.add(`${request.key} ${coordinator}`)
    this.components.log.info({ key: request.key, op: request.op, coordinator, err: err.message }, `claim coordinator unreachable; ${next}`)
  }

  /** Addresses a redirect gave for `peer`, into the peer store, so it can be dialled. */
  private async learn (peer: string, addrs: string[]): Promise<void> {
    try {
      const multiaddrs = addrs.map(a => multiaddr(a))
      if (multiaddrs.length > 0) await this.components.node.peerStore.merge(peerIdFromString(peer), { multiaddrs })
    } catch {}
  }

  /**
   * A redirect (1.2.0) for a claim this node should not decide: it has no entry for the key and
   * no copy of it, and a connected peer that speaks 1.2.0 is closer to the key than itself
   * (its view has filled further than the asker's). Undefined: decide it here.
   */
  private async redirect (from: string, request: ClaimRequest): Promise<ClaimRedirect | undefined> {
    if (request.op !== 'claim' || request.direct === true || this.table.describe(request.key) !== undefined) return undefined
    const self = this.components.node.peerId.toString()
    const target = closerPeer(request.key, self, [...this.redirectable].filter(p => p !== from))
    if (target === undefined || await this.components.stored(request.key).catch(() => false)) return undefined
    const { addrs } = await this.holder(target)
    return { status: 'redirect', peer: target, addrs }
  }

  /**
   * This node and the peers known to speak the claim protocol (its routing table's closest, and
   * every connected one), closest to `key` first. Connected peers count: a peer enters the
   * routing table only after kad-dht pinged it, and a node that just joined must still agree on
   * the coordinator. Peers without the protocol (another program on the DHT) are never asked.
   */
  async coordinators (key: Digest): Promise<string[]> {
    const { node } = this.components
    const dht = node.services.dht as unknown as KadInternals
    const near = dht.routingTable?.closestPeers?.(keyKadId(key), { count: CLAIM_COORDINATORS_TRIED + 1 }) ?? []
    const candidates = new Set([node.peerId.toString(), ...this.speakers])
    for (const peer of near) {
      if (candidates.has(peer.toString())) continue
      // In the table but not connected now: the peer store says whether it speaks the protocol.
      const info = await node.peerStore.get(peer).catch(() => undefined)
      if (info?.protocols.includes(CLAIM_PROTOCOL) === true) candidates.add(peer.toString())
    }
    return coordinatorsOf(key, [...candidates])
  }

  private async decide (from: string, request: ClaimRequest, options: AbortOptions = {}): Promise<ClaimAnswer> {
    const self = this.components.node.peerId.toString()
    // A joiner that reports this node failed while this node answers, and has the key: its
    // transfer timed out on a loaded machine. It is named again rather than handed a lease
    // (a second upstream copy; issue 23).
    if (from !== self && request.failed?.includes(self) === true && await this.components.stored(request.key).catch(() => false)) {
      request = { ...request, failed: request.failed.filter(p => p !== self) }
    }
    const before = this.table.describe(request.key)
    // Itself: the stored-copy rule above decides (a copy it evicted is not held).
    const connected = (peer: string): boolean => peer !== self && this.components.node.getConnections(peerIdFromString(peer)).length > 0
    const answer = this.table.decide(
      await this.holder(from),
      request,
      request.op === 'claim' ? await this.providers(from, request.key, options) : [],
      connected
    )
    // A second lease on a key the table knew is a second upstream copy: say why (issue 23).
    if (answer.status === 'fetch' && before !== undefined && before.peer !== from) {
      this.components.log.info(
        { key: request.key, op: request.op, from, failed: request.failed, before },
        'claim: lease handed to another node'
      )
    }
    return answer
  }

  /** `peer` with the addresses this node knows for it, so a joiner that is not connected can dial it. */
  private async holder (peer: string): Promise<Holder> {
    if (peer === this.components.node.peerId.toString()) return { peer, addrs: [] }
    const info = await this.components.node.peerStore.get(peerIdFromString(peer)).catch(() => undefined)
    return { peer, addrs: info?.addresses.map(a => a.multiaddr.toString()).slice(0, 16) ?? [] }
  }

  /**
   * Who else can serve `key`: this node when it has it, then the provider records it holds (it
   * is near the key, so it has them if anyone does).
   */
  private async providers (from: string, key: Digest, options: AbortOptions = {}): Promise<Holder[]> {
    const { node } = this.components
    const out: Holder[] = []
    const self = node.peerId.toString()
    if (from !== self && await this.components.stored(key).catch(() => false)) out.push({ peer: self, addrs: [] })
    const dht = node.services.dht as unknown as KadInternals
    try {
      const ids = await dht.providers?.getProviders?.(keyCid(key), options) ?? []
      for (const id of ids) if (!id.equals(node.peerId)) out.push(await this.holder(id.toString()))
    } catch {}
    return out
  }

  private async send (coordinator: string, request: ClaimRequest, options: Required<AbortOptions>): Promise<WireClaimAnswer> {
    const { signal } = options
    // negotiateFully false: the protocol name goes with the request, one round trip less; so
    // the version is picked from what identify said the coordinator speaks.
    const id = peerIdFromString(coordinator)
    const info = await this.components.node.peerStore.get(id).catch(() => undefined)
    const protocol = CLAIM_PROTOCOLS.find(p => info?.protocols.includes(p) === true) ?? CLAIM_PROTOCOL
    const stream = await this.components.node.dialProtocol(id, protocol, { signal, negotiateFully: false })
    // An older coordinator's decoder refuses fields it does not know.
    const { pieces, direct, ...plain } = request
    const sent = protocol === CLAIM_PROTOCOL_REDIRECT
      ? request
      : protocol === CLAIM_PROTOCOL_SWARM && pieces !== undefined
      ? { ...plain, pieces }
      : plain
    return await exchangeFrame(stream, encodeClaimFrame(sent), decodeClaimAnswer, { signal, maxAnswerBytes: MAX_ANSWER_BYTES })
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs * 2)
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const from = connection.remotePeer.toString()
    try {
      let answer: WireClaimAnswer
      try {
        const request = decodeClaimRequest((await lp.read({ signal })).subarray())
        // Only a 1.2.0 asker follows a redirect; an older one is answered here.
        answer = (stream.protocol === CLAIM_PROTOCOL_REDIRECT ? await this.redirect(from, request) : undefined) ??
          await this.decide(from, request, { signal })
        // A 1.0.0 asker's decoder refuses fields it does not know.
        if (answer.status === 'join' && stream.protocol === CLAIM_PROTOCOL) {
          delete answer.others
          delete answer.seeder
        }
        this.components.log.debug({ peer: from, key: request.key, op: request.op, answer: answer.status }, 'claim answered')
      } catch (err) {
        // Only a frame that does not decode is the peer's fault; a request that came too late
        // or a stream that broke (a loaded machine, issue 23) is not answered at all.
        if (!(err instanceof FrameError)) {
          this.components.log.info(
            { peer: from, err: (err as Error).message },
            'claim request not answered: it did not arrive in time or its stream failed'
          )
          throw err
        }
        this.components.log.warn({ peer: from, err: err.message }, 'bad claim request from peer')
        answer = { status: 'bad_request', message: err.message.slice(0, MAX_ANSWER_MESSAGE_CHARS) }
      }
      await lp.write(encodeClaimFrame(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }
}

/**
 * The round trip's own timeout fired (the caller's signal had not aborted): the only other abort
 * there is. Connection errors (refused, reset, closed) are not timeouts.
 */
function isTimeout (err: Error): boolean {
  return err.name === 'TimeoutError' || err.name === 'AbortError'
}
