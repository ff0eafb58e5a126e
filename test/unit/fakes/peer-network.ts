import { generateKeyPair } from '@libp2p/crypto/keys'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerNetwork, SwarmKey } from '../../../src/resolver/peer-network.js'
import type { FetchOptions, PeerBlob, PeerRef, PieceHashAnswer } from '../../../src/p2p/fetch/client.js'
import { pieceHash } from '../../../src/p2p/pieces/piece-hasher.js'
import type { ApiRecordAnswer, FetchRequest, RecordAnswer, TagAnswer } from '../../../src/p2p/fetch/frames.js'
import type { ClaimAnswer, ClaimRequest } from '../../../src/p2p/claim/frames.js'
import type { ClaimOptions, CoordinatedAnswer } from '../../../src/p2p/claim/service.js'
import { ClaimTable, type Holder } from '../../../src/p2p/claim/table.js'
import { PeerFetchError } from '../../../src/p2p/fetch/errors.js'
import { IN_PROGRESS_IDLE_MS, MAX_HASHES_PER_ANSWER, PIECE_SIZE } from '../../../src/p2p/constants.js'
import type { Digest } from '../../../src/oci/digest.js'

/**
 * How a fake peer answers a fetch (mirrors what fetchFromPeer makes of a real peer's answer):
 * - honest: the bytes asked for;
 * - liar: the same bytes with the byte at absolute offset `at` (default: the last) flipped;
 * - stall: `after` undefined: no header at all (→ `stalled` after idleMs); else the header and
 *   `after` bytes of the transfer, then silence (the body fails `stalled` after idleMs);
 * - busy: answers `busy` (`times` fetches, then honest; default always);
 * - dead: the dial fails;
 * - truncate: the header, `after` bytes of the transfer, then the stream closes (`truncated`).
 */
export type PeerBehaviour =
  | { kind: 'honest' }
  | { kind: 'liar', at?: number }
  | { kind: 'stall', after?: number }
  | { kind: 'busy', times?: number }
  | { kind: 'dead' }
  | { kind: 'truncate', after: number }

/**
 * A blob a peer is still downloading (an in-progress holder): its header says `inProgress`, its
 * bytes follow `release`, and (like the real server) the last byte is held back until `finish`.
 */
export class GrowingContent {
  private available = 0
  private finished = false
  private waiters: Array<() => void> = []

  constructor (readonly body: Buffer) {}

  /** Makes `n` more bytes available (or all of them but the last when `n` is omitted). */
  release (n?: number): void {
    this.available = Math.min(this.body.byteLength, n === undefined ? this.body.byteLength : this.available + n)
    this.wake()
  }

  /** The holder's copy verified: every byte, the last one included, may be read. */
  finish (): void {
    this.available = this.body.byteLength
    this.finished = true
    this.wake()
  }

  /** Bytes the holder has now (a reader of pieces, which checks piece hashes, may have all of them but the blob's last). */
  get have (): number {
    return this.available
  }

  /** The holder's copy verified (`finish`). */
  get complete (): boolean {
    return this.finished
  }

  /** Bytes a reader may have now. */
  get readable (): number {
    return this.finished ? this.body.byteLength : Math.min(this.available, this.body.byteLength - 1)
  }

  /** Resolves the next time bytes arrive. */
  async changed (): Promise<void> {
    await new Promise<void>(resolve => this.waiters.push(resolve))
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}

type Held =
  | { type: 'blob', body: Buffer | GrowingContent, mediaType?: string }
  | { type: 'tag', tag: TagAnswer }
  | { type: 'api', api: ApiRecordAnswer, body: Buffer }
  | { type: 'record', record: RecordAnswer }

/** One fake peer: the keys it holds, how it behaves, and what it was asked. */
export class FakePeer {
  behaviour: PeerBehaviour = { kind: 'honest' }
  /** Every fetch request it received, in order (dead peers included: the dial was tried). */
  readonly requests: FetchRequest[] = []
  /** Transfers handed out and not yet closed. */
  open = 0
  /** Speaks fetch/1.2.0 (piece hashes, piece ranges); an older peer refuses both. */
  pieces = false
  /** Its GrowingContent comes from other peers (it relays verified pieces: `busy` before it has any at `start`). */
  relayed = false
  /** Piece-hash requests it received, by first piece. */
  readonly hashRequests: number[] = []
  private readonly held = new Map<string, Held>()

  constructor (readonly id: PeerId, readonly label: string, readonly addrs: string[]) {}

  get name (): string {
    return this.id.toString()
  }

  /** What providers() yields and a claim's `join` names. */
  get ref (): PeerRef {
    return { id: this.id, multiaddrs: this.addrs.map(a => multiaddr(a)) }
  }

  get fetches (): number {
    return this.requests.length
  }

  /** Holds blob `digest` (stored, or a GrowingContent still downloading). */
  holdBlob (digest: Digest, body: Buffer | GrowingContent, mediaType?: string): this {
    this.held.set(digest, { type: 'blob', body, ...(mediaType !== undefined ? { mediaType } : {}) })
    return this
  }

  /** Holds a tag resolution for `key`. */
  holdTag (key: SwarmKey, tag: TagAnswer): this {
    this.held.set(key, { type: 'tag', tag })
    return this
  }

  /** Holds an API record and its body for `key`. */
  holdApi (key: SwarmKey, api: ApiRecordAnswer, body: Buffer): this {
    this.held.set(key, { type: 'api', api, body })
    return this
  }

  /** Holds a small record (SwarmRecords) for `key`. */
  holdRecord (key: SwarmKey, record: RecordAnswer): this {
    this.held.set(key, { type: 'record', record })
    return this
  }

  drop (key: SwarmKey): void {
    this.held.delete(key)
  }

  holds (key: SwarmKey): boolean {
    return this.held.has(key)
  }

  behave (behaviour: PeerBehaviour): this {
    this.behaviour = behaviour
    return this
  }

  /** Speaks fetch/1.2.0 (`relayed`: a partial holder that receives the blob from peers itself). */
  speaksPieces (relayed = false): this {
    this.pieces = true
    this.relayed = relayed
    return this
  }

  /** @internal */
  lookup (key: string): Held | undefined {
    return this.held.get(key)
  }
}

/** How `providers` behaves (the DHT query). */
export interface ProvidersMode {
  /** Pause before each provider is yielded (a slow DHT). */
  delayMs?: number
  /** After the providers found: throw this (a failed query). */
  fail?: Error
  /** After the providers found: go on until the signal aborts, like a query that finds nothing more. */
  hang?: boolean
  /** Skip denied peers, as Swarm.providers does (default true). */
  skipDenied?: boolean
}

/** How `claim` answers. */
export type ClaimMode =
  /** A coordinator with a real ClaimTable; this node's own holder records are the providers. */
  | { kind: 'table' }
  /** No coordinator answers: undefined after `claimTimeoutMs` (ClaimService.ask's timeout). */
  | { kind: 'silent' }
  /** Anything else: the test decides. */
  | { kind: 'custom', answer: (request: ClaimRequest, to: string | undefined) => ClaimAnswer | undefined }

export interface FakePeerNetworkOptions {
  /** ClaimService.ask's wait for a coordinator that does not answer. Default 20 ms. */
  claimTimeoutMs?: number
  /** Idle allowance of an in-progress transfer (IN_PROGRESS_IDLE_MS in the real client). */
  inProgressIdleMs?: number
  /** Bytes per chunk of a transfer; default 16 KiB. */
  chunkBytes?: number
  /** Chunks per batch of `body`; default 4. */
  batchChunks?: number
  /** The coordinator's clock (lease expiry); default Date.now. */
  now?: () => number
  /** How long a growing holder waits for a next piece before answering a hashes request with none. Default 50 ms. */
  hashWaitMs?: number
}

export interface ClaimCall {
  request: ClaimRequest
  to: string | undefined
  answer: ClaimAnswer | undefined
}

let nextPort = 4001

/** A new real Ed25519 peer ID. */
export async function newPeerId (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

/**
 * An in-memory swarm for the resolvers (implements PeerNetwork like p2p/Swarm): fake peers with
 * real peer IDs and multiaddrs that hold keys and serve byte ranges in batches, a DHT that yields
 * the holders of a key, a claim coordinator backed by the real ClaimTable, a deny list, and a log
 * of announcements. Failures come as the real client reports them (PeerFetchError reasons).
 *
 *   const net = await FakePeerNetwork.create()
 *   const a = (await net.addPeer('a')).holdBlob(digest, body)
 *   const b = (await net.addPeer('b')).holdBlob(digest, body).behave({ kind: 'liar' })
 */
export class FakePeerNetwork implements PeerNetwork {
  readonly peers: FakePeer[] = []
  readonly announced: SwarmKey[] = []
  /** Of `announced`, the keys announced with `now` (not waiting for a quiet moment). */
  readonly announcedNow: SwarmKey[] = []
  readonly forgotten: SwarmKey[] = []
  readonly denied = new Map<string, string>()
  readonly claims: ClaimCall[] = []
  /** Signals passed to `providers` (a test checks the lookup was stopped). */
  readonly lookups: AbortSignal[] = []
  providersMode: ProvidersMode = {}
  claimMode: ClaimMode = { kind: 'table' }
  /** The coordinator's table (claims by other peers can be put in it with `holdClaim`). */
  readonly table: ClaimTable
  /** The peer ID named as coordinator in answers; this node's own by default. */
  coordinator: string
  private readonly opts: Required<Omit<FakePeerNetworkOptions, 'now'>>

  private constructor (readonly peerId: PeerId, options: FakePeerNetworkOptions) {
    this.opts = {
      claimTimeoutMs: options.claimTimeoutMs ?? 20,
      inProgressIdleMs: options.inProgressIdleMs ?? IN_PROGRESS_IDLE_MS,
      chunkBytes: options.chunkBytes ?? 16 * 1024,
      batchChunks: options.batchChunks ?? 4,
      hashWaitMs: options.hashWaitMs ?? 50
    }
    this.table = new ClaimTable(options.now !== undefined ? { now: options.now } : {})
    this.coordinator = peerId.toString()
  }

  static async create (options: FakePeerNetworkOptions = {}): Promise<FakePeerNetwork> {
    return new FakePeerNetwork(await newPeerId(), options)
  }

  /** A new peer (honest, holding nothing) with a real peer ID and a /ip4/127.0.0.1/tcp address. */
  async addPeer (label: string, behaviour: PeerBehaviour = { kind: 'honest' }): Promise<FakePeer> {
    const id = await newPeerId()
    const peer = new FakePeer(id, label, [`/ip4/127.0.0.1/tcp/${nextPort++}/p2p/${id.toString()}`])
    peer.behave(behaviour)
    this.peers.push(peer)
    return peer
  }

  peer (name: string): FakePeer | undefined {
    return this.peers.find(p => p.name === name)
  }

  /** Fetches each peer received, by label. */
  fetchCounts (): Record<string, number> {
    return Object.fromEntries(this.peers.map(p => [p.label, p.fetches]))
  }

  /** Transfers handed out and never closed, over all peers (a resolver must close each). */
  get openTransfers (): number {
    return this.peers.reduce((n, p) => n + p.open, 0)
  }

  /** Another node claims `key` at the coordinator (it is fetching it from the upstream). */
  holdClaim (peer: FakePeer, key: Digest): ClaimAnswer {
    return this.table.decide(holderOf(peer), { op: 'claim', key }, [])
  }

  async *providers (key: SwarmKey, options: AbortOptions = {}): AsyncGenerator<PeerRef> {
    const signal = options.signal ?? new AbortController().signal
    this.lookups.push(signal)
    const mode = this.providersMode
    for (const peer of this.peers) {
      if (!peer.holds(key)) continue
      if (mode.delayMs !== undefined) await sleep(mode.delayMs, signal)
      signal.throwIfAborted()
      if (mode.skipDenied !== false && this.isDenied(peer.name)) continue
      yield peer.ref
    }
    if (mode.fail !== undefined) throw mode.fail
    if (mode.hang === true) {
      await new Promise<void>(resolve => {
        signal.addEventListener('abort', () => {
          resolve()
        }, { once: true })
      })
      signal.throwIfAborted()
    }
  }

  async fetch (ref: PeerRef, request: FetchRequest, opts: FetchOptions): Promise<PeerBlob> {
    const name = ref.id.toString()
    const peer = this.peer(name)
    peer?.requests.push(request)
    if (peer === undefined || peer.behaviour.kind === 'dead' || opts.signal.aborted) {
      throw new PeerFetchError(name, 'dial', 'could not open a fetch stream: connection refused')
    }
    const behaviour = peer.behaviour
    if (behaviour.kind === 'stall' && behaviour.after === undefined) {
      // No header: stalled after idleMs, or the caller's abort (the real client calls that `protocol`).
      const aborted = await sleep(opts.idleMs, opts.signal).then(() => false, () => true)
      throw new PeerFetchError(
        name,
        aborted ? 'protocol' : 'stalled',
        aborted ? 'This operation was aborted' : `no answer within ${opts.idleMs} ms`
      )
    }
    if (behaviour.kind === 'busy' && (behaviour.times === undefined || behaviour.times-- > 0)) {
      throw new PeerFetchError(name, 'busy', 'answered busy: serving 1 blobs already')
    }
    if (request.pieces === true && !peer.pieces) {
      throw new PeerFetchError(name, 'refused', 'speaks /p2p-cache/fetch/1.1.0, without pieces (/p2p-cache/fetch/1.2.0)')
    }
    const held = peer.lookup(request.key)
    if (held === undefined) throw new PeerFetchError(name, 'not_found', 'answered not_found')
    const base = { peer: name, dataChannel: false }
    const pieces = request.pieces === true && held.type === 'blob'
    if (pieces && peer.relayed && held.body instanceof GrowingContent && held.body.have <= (request.start ?? 0)) {
      throw new PeerFetchError(name, 'busy', `answered busy: has ${held.body.have} bytes of it so far`, held.body.have)
    }
    if (held.type === 'tag') {
      return { ...base, size: 0, start: 0, length: 0, inProgress: false, tag: held.tag, body: empty(), close: () => {} }
    }
    if (held.type === 'record') {
      return { ...base, size: 0, start: 0, length: 0, inProgress: false, record: held.record, body: empty(), close: () => {} }
    }
    const content = held.body
    const size = content instanceof GrowingContent ? content.body.byteLength : content.byteLength
    const start = held.type === 'api' ? 0 : request.start ?? 0
    const end = held.type === 'api' ? size : Math.min(request.end ?? size, size)
    if (start > size) throw new PeerFetchError(name, 'refused', `answered bad_request: range starts at ${start}, past the size ${size}`)
    const length = Math.max(0, end - start)
    const inProgress = content instanceof GrowingContent
    const idleMs = inProgress ? Math.max(opts.idleMs, this.opts.inProgressIdleMs) : opts.idleMs
    const stop = new AbortController()
    peer.open++
    let closed = false
    const close = (): void => {
      if (closed) return
      closed = true
      peer.open--
      stop.abort(new Error('closed'))
    }
    const spanOnly = pieces && end < size
    const body = this.transfer(peer, content, start, length, idleMs, AbortSignal.any([opts.signal, stop.signal]), opts.signal, spanOnly)
    return {
      ...base,
      size,
      start,
      length,
      inProgress,
      ...(pieces ? { have: content instanceof GrowingContent ? content.have : size } : {}),
      ...(pieces && peer.relayed && inProgress ? { relayed: true } : {}),
      ...(held.type === 'blob' && held.mediaType !== undefined ? { mediaType: held.mediaType } : {}),
      ...(held.type === 'api' ? { api: held.api } : {}),
      body,
      close
    }
  }

  /** The bytes of one transfer, in batches, as the behaviour dictates. */
  private async *transfer (
    peer: FakePeer,
    content: Buffer | GrowingContent,
    start: number,
    length: number,
    idleMs: number,
    signal: AbortSignal,
    caller: AbortSignal,
    spanOnly = false
  ): AsyncGenerator<Buffer[]> {
    const name = peer.name
    const behaviour = peer.behaviour
    const whole = content instanceof GrowingContent ? content.body : content
    const limit = behaviour.kind === 'truncate' || behaviour.kind === 'stall' ? Math.min(length, behaviour.after ?? 0) : length
    let delivered = 0
    const failed = (): PeerFetchError => {
      const reason = caller.reason as unknown
      return reason instanceof PeerFetchError
        ? reason
        : new PeerFetchError(
          name,
          'truncated',
          `stream failed after ${delivered} of ${length} bytes: ${reason instanceof Error ? reason.message : 'aborted'}`
        )
    }
    while (delivered < length) {
      if (caller.aborted) throw failed()
      if (signal.aborted) return
      // A piece range short of the blob's end is not held back (the receiver checks piece hashes).
      const readable = content instanceof GrowingContent ? Math.min((spanOnly ? content.have : content.readable) - start, limit) : limit
      if (delivered >= limit || delivered >= readable) {
        if (behaviour.kind === 'truncate' && delivered >= limit) {
          throw new PeerFetchError(name, 'truncated', `closed the stream after ${delivered} of ${length} bytes`)
        }
        // Nothing more comes for now: wait for bytes (a growing holder) or for the idle budget to end.
        const more = content instanceof GrowingContent && behaviour.kind !== 'stall' ? content.changed() : new Promise<void>(() => {})
        const wait = new AbortController()
        const outcome = await Promise.race([
          more.then(() => 'more' as const),
          sleep(idleMs, AbortSignal.any([signal, wait.signal])).then(() => 'idle' as const, () => 'aborted' as const)
        ])
        wait.abort()
        if (outcome === 'idle') {
          throw new PeerFetchError(name, 'stalled', `sent nothing for ${idleMs} ms (after ${delivered} of ${length} bytes)`)
        }
        continue
      }
      const batch: Buffer[] = []
      for (let i = 0; i < this.opts.batchChunks && delivered < readable; i++) {
        const n = Math.min(this.opts.chunkBytes, readable - delivered)
        const from = start + delivered
        const chunk = Buffer.from(whole.subarray(from, from + n))
        if (behaviour.kind === 'liar') {
          const at = behaviour.at ?? whole.byteLength - 1
          if (at >= from && at < from + n) chunk[at - from] = (chunk[at - from] ?? 0) ^ 0xff
        }
        batch.push(chunk)
        delivered += n
      }
      // A turn of the event loop per batch, like bytes arriving off a socket.
      await new Promise(resolve => setImmediate(resolve))
      yield batch
    }
  }

  async pieceHashes (ref: PeerRef, key: Digest, from: number, opts: FetchOptions): Promise<PieceHashAnswer> {
    const name = ref.id.toString()
    const peer = this.peer(name)
    peer?.hashRequests.push(from)
    if (peer === undefined || peer.behaviour.kind === 'dead' || opts.signal.aborted) {
      throw new PeerFetchError(name, 'dial', 'could not open a fetch stream: connection refused')
    }
    if (!peer.pieces) throw new PeerFetchError(name, 'refused', 'speaks /p2p-cache/fetch/1.1.0, without pieces (/p2p-cache/fetch/1.2.0)')
    const behaviour = peer.behaviour
    if (behaviour.kind === 'stall' && behaviour.after === undefined) {
      await sleep(opts.idleMs, opts.signal).catch(() => {})
      throw new PeerFetchError(name, 'stalled', `no answer within ${opts.idleMs} ms`)
    }
    if (behaviour.kind === 'busy' && (behaviour.times === undefined || behaviour.times-- > 0)) {
      throw new PeerFetchError(name, 'busy', 'answered busy: serving 1 blobs already')
    }
    const held = peer.lookup(key)
    if (held?.type !== 'blob') throw new PeerFetchError(name, 'not_found', 'answered not_found')
    const content = held.body
    const whole = content instanceof GrowingContent ? content.body : content
    // A liar's hashes match its own (wrong) bytes, as a real one's would.
    const bytes = behaviour.kind === 'liar' ? Buffer.from(whole) : whole
    if (behaviour.kind === 'liar') {
      const at = behaviour.at ?? whole.byteLength - 1
      bytes[at] = (bytes[at] ?? 0) ^ 0xff
    }
    const size = whole.byteLength
    const count = (): number => {
      const have = content instanceof GrowingContent ? (content.complete ? size : content.have) : size
      return have >= size ? Math.ceil(size / PIECE_SIZE) : Math.floor(have / PIECE_SIZE)
    }
    if (count() <= from && content instanceof GrowingContent && !content.complete) {
      await Promise.race([content.changed(), sleep(this.opts.hashWaitMs, opts.signal).catch(() => {})])
    }
    const hashes: string[] = []
    for (let i = from; i < Math.min(count(), from + MAX_HASHES_PER_ANSWER); i++) {
      hashes.push(pieceHash([bytes.subarray(i * PIECE_SIZE, Math.min(size, (i + 1) * PIECE_SIZE))]))
    }
    return { peer: name, size, have: content instanceof GrowingContent ? content.have : size, from, hashes }
  }

  async claim (request: ClaimRequest, options: ClaimOptions): Promise<CoordinatedAnswer | undefined> {
    const { signal, to } = options
    signal.throwIfAborted()
    const mode = this.claimMode
    let answer: ClaimAnswer | undefined
    if (mode.kind === 'silent') {
      await sleep(this.opts.claimTimeoutMs, signal)
    } else if (mode.kind === 'custom') {
      answer = mode.answer(request, to)
    } else {
      const self: Holder = { peer: this.peerId.toString(), addrs: [] }
      const holders = request.op === 'claim' ? this.peers.filter(p => p.holds(request.key)).map(holderOf) : []
      answer = this.table.decide(self, request, holders)
    }
    this.claims.push({ request, to, answer })
    return answer === undefined ? undefined : { answer, coordinator: to ?? this.coordinator }
  }

  deny (peer: string, reason: string): void {
    this.denied.set(peer, reason)
  }

  isDenied (peer: string): boolean {
    return this.denied.has(peer)
  }

  announce (key: SwarmKey, opts: { now?: boolean } = {}): void {
    this.announced.push(key)
    if (opts.now === true) this.announcedNow.push(key)
  }

  forget (key: SwarmKey): void {
    this.forgotten.push(key)
  }

  /** Claims of one op, in order (e.g. 'renew', 'done', 'release'). */
  claimsOf (op: ClaimRequest['op']): ClaimCall[] {
    return this.claims.filter(c => c.request.op === op)
  }
}

function holderOf (peer: FakePeer): Holder {
  return { peer: peer.name, addrs: peer.addrs }
}

async function* empty (): AsyncGenerator<Buffer[]> {}

/** Resolves after `ms` (an unref'd timer), rejects with the reason when `signal` aborts first. */
async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason as Error)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
