import type { Readable } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { AbortOptions, Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { BlobHandle, StoreReader } from '../../store/roles.js'
import type { Stats } from '../../metrics/stats.js'
import type { P2pNode } from '../node.js'
import {
  DATA_CHANNEL_PROTOCOLS,
  FETCH_PROTOCOLS,
  HASHES_WAIT_MS,
  IN_PROGRESS_READY_WAIT_MS,
  MAX_HASHES_PER_ANSWER,
  MAX_REQUEST_BYTES,
  PIECE_SIZE,
  RELAY_FOLLOW_AHEAD
} from '../constants.js'
import { StoredPieceHashes } from '../pieces/stored-hashes.js'
import { setTimeout as delay } from 'node:timers/promises'
import { DATA_MIN_BYTES } from '../data/constants.js'
import type { DataServer } from '../data/server.js'
import { UploadRate } from './upload-rate.js'
import { sendBody, socketSink, streamSink } from './send-body.js'
import {
  decodeRequest,
  encodeFrame,
  MAX_HEADER_MESSAGE_CHARS,
  type ApiRecordAnswer,
  type FetchRequest,
  type FetchResponseHeader,
  type RecordAnswer,
  type TagAnswer
} from './frames.js'
import { isDigest, type Digest } from '../../oci/digest.js'
import { FrameError } from '../json-frame.js'
import { isTagKey, type TagKey } from '../../oci/tag-key.js'
import type { ApiKey } from '../../keys/api-key.js'
import { isRecordKey, type RecordKey } from '../../keys/record-key.js'

export interface FetchServerInit {
  /** Blobs served to peers at once; more get `busy` and ask another provider. */
  maxUploads: number
  /** Bytes per second served to peers in all (CACHE_P2P_MAX_UPLOAD_RATE); undefined = no cap. */
  maxUploadRate?: number | undefined
  /** A peer that sends no request, or stops reading, for this long is cut off. */
  idleTimeoutMs?: number
}

/** A blob this node is fetching right now; its bytes are readable as they arrive. */
export interface GrowingBlob {
  /** Whole size, once the source stated it. */
  size: number | undefined
  mediaType?: string
  /**
   * Bytes [start, end) as they arrive, the last byte held back until the digest verified; with
   * `pieces` (a receiver that checks piece hashes) only the blob's own last byte is held back.
   */
  stream: (start: number, end: number | undefined, pieces?: boolean) => Readable
  release: () => Promise<void>
  /** Bytes [0, have()) are written and verified piece by piece (a download in progress). */
  have?: () => number
  /** The bytes come from other peers (this node relays verified pieces), not from the upstream. */
  relayed?: boolean
  /** Which copy of the download this is (see FetchResponseHeader.epoch). */
  epoch?: string
  /**
   * Up to `max` piece hashes from piece `from` on (concatenated hex), waiting until `signal`
   * aborts for the first one when there is none yet (then the empty string).
   */
  pieceHashes?: (from: number, max: number, options: Required<AbortOptions>) => Promise<string>
}

export interface FetchServerComponents {
  node: P2pNode
  store: Pick<StoreReader, 'openRead'>
  stats: Stats
  /** This node's last resolution of a tag, for peers whose upstream is down. */
  tags: (key: TagKey) => Promise<TagAnswer | undefined>
  /** A stored API response, for peers that will revalidate it with their own credentials. */
  apiRecords: (key: ApiKey) => Promise<ApiRecordAnswer | undefined>
  /** Small records (SwarmRecords) of the kinds this node shares; undefined for the rest. */
  records: (key: RecordKey) => Promise<RecordAnswer | undefined>
  /**
   * This node's own download of `digest` in progress, if any (never one started for the peer:
   * docs/design.md §3.4), once its size is known; `pending` when it has no source yet as `signal` aborts;
   * undefined when there is none.
   */
  inProgress: (digest: Digest, options: Required<AbortOptions>) => Promise<GrowingBlob | 'pending' | undefined>
  /** The data channel, when enabled: large transfers to peers that ask for it go over it. */
  data?: DataServer | undefined
  log: Logger
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000
/** How long a hashes request waits for a stored copy's hashes before it is answered `busy`. */
const STORED_HASHES_WAIT_MS = 500
/** Streams one connection may have open on this protocol. */
const MAX_INBOUND_STREAMS = 64

/**
 * Answers `/p2p-cache/fetch/1.0.0` from the local store, or from a download this node is doing
 * for its own clients (following the file as it grows). A request from a peer never starts a
 * fetch: it is not forwarded to the upstream or to other peers (docs/design.md §3.4), so a swarm can't
 * loop or amplify.
 */
export class FetchServer {
  private uploads = 0
  private readonly idleTimeoutMs: number
  /** The node's upload cap, shared by every transfer (undefined: none). */
  private readonly rate: UploadRate | undefined
  private readonly storedHashes = new StoredPieceHashes()

  constructor (private readonly components: FetchServerComponents, private readonly init: FetchServerInit) {
    this.idleTimeoutMs = init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    this.rate = init.maxUploadRate === undefined ? undefined : new UploadRate({ bytesPerSecond: init.maxUploadRate })
  }

  get activeUploads (): number {
    return this.uploads
  }

  async start (): Promise<void> {
    // 1.1.0 is 1.0.0 plus the data channel offer; both are served.
    await this.components.node.handle(FETCH_PROTOCOLS, (stream, connection) => {
      void this.serve(stream, connection)
    }, { maxInboundStreams: MAX_INBOUND_STREAMS })
  }

  async stop (): Promise<void> {
    await this.components.node.unhandle(FETCH_PROTOCOLS)
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const { stats } = this.components
    const peer = connection.remotePeer.toString()
    const log = this.components.log.child({ peer })
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const reply = async (header: FetchResponseHeader): Promise<void> => {
      // A message longer than the header schema allows would make the whole answer undecodable.
      const sent = header.message === undefined ? header : { ...header, message: header.message.slice(0, MAX_HEADER_MESSAGE_CHARS) }
      await lp.write(encodeFrame(sent), { signal: AbortSignal.timeout(this.idleTimeoutMs) })
      await stream.close({ signal: AbortSignal.timeout(this.idleTimeoutMs) })
    }
    let request
    try {
      request = decodeRequest((await lp.read({ signal: AbortSignal.timeout(this.idleTimeoutMs) })).subarray())
    } catch (err) {
      // Only a frame that is malformed is the peer's fault; one cut short (the peer gave up or
      // left: a reset, an early end, a request too late on a loaded machine) is not answered.
      if (!(err instanceof FrameError) && !/^Invalid(Data|Message)Length/.test((err as Error).name)) {
        log.debug({ err: (err as Error).message }, 'fetch request not read: the peer left, or it came too late')
        stream.abort(err as Error)
        return
      }
      log.warn({ err: (err as Error).message }, 'bad fetch request from peer')
      await reply({ status: 'bad_request', message: (err as Error).message }).catch(e => {
        stream.abort(e as Error)
      })
      return
    }
    const { key } = request
    if (isRecordKey(key)) {
      const record = await this.components.records(key).catch(() => undefined)
      await reply(record === undefined ? { status: 'not_found' } : { status: 'ok', size: 0, start: 0, length: 0, record }).catch(e => {
        stream.abort(e as Error)
      })
      return
    }
    if (isTagKey(key)) {
      const tag = await this.components.tags(key).catch(() => undefined)
      await reply(tag === undefined ? { status: 'not_found' } : { status: 'ok', size: 0, start: 0, length: 0, tag }).catch(e => {
        stream.abort(e as Error)
      })
      return
    }
    // An API response: its record in the header, then its body as the bytes (the whole body).
    let api: ApiRecordAnswer | undefined
    if (!isDigest(key)) {
      api = await this.components.apiRecords(key).catch(() => undefined)
      if (api === undefined) {
        await reply({ status: 'not_found' }).catch(e => {
          stream.abort(e as Error)
        })
        return
      }
    }
    const blob = api?.body ?? key as Digest
    if (request.hashes !== undefined) {
      await this.serveHashes(blob, request.hashes, reply, log).catch(e => {
        stream.abort(e as Error)
      })
      return
    }
    if (this.uploads >= this.init.maxUploads) {
      await reply({ status: 'busy', message: `serving ${this.uploads} blobs already` }).catch(e => {
        stream.abort(e as Error)
      })
      return
    }
    this.uploads++
    let source: (GrowingBlob & { size: number, inProgress: boolean }) | undefined
    /** The transfer went to the data channel, which releases the source and the slot. */
    let handedOff = false
    try {
      // An API body is served only once stored.
      const found = await this.lookup(blob, api === undefined)
      if (found === 'pending') {
        await reply({ status: 'busy', message: 'fetching it; the upstream has not answered yet' })
        return
      }
      if (found !== undefined && 'stored' in found) source = storedSource(found.stored)
      else if (found?.growing.size !== undefined) source = { ...found.growing, size: found.growing.size, inProgress: true }
      else await found?.growing.release()
      // A relay serves pieces it holds, and follows its own download for what it is about to
      // get (its follower in the chain asks just past it); asked further ahead, it says how far it is.
      const have = source?.have?.()
      if (request.pieces === true && source?.relayed === true && have !== undefined && (request.start ?? 0) >= have + RELAY_FOLLOW_AHEAD) {
        await reply({ status: 'busy', message: `has ${have} bytes of it so far`, have })
        return
      }
      if (source === undefined) {
        await reply({ status: 'not_found' })
        return
      }
      const size = source.size
      const start = api !== undefined ? 0 : request.start ?? 0
      const end = api !== undefined ? size : Math.min(request.end ?? size, size)
      if (start > size) {
        await reply({ status: 'bad_request', message: `range starts at ${start}, past the size ${size}` })
        return
      }
      const length = Math.max(0, end - start)
      const pieces = request.pieces === true
      const header: FetchResponseHeader = {
        status: 'ok',
        size,
        start,
        length,
        ...(source.mediaType !== undefined ? { mediaType: source.mediaType } : {}),
        ...(source.inProgress ? { inProgress: true } : {}),
        ...(source.relayed === true ? { relayed: true } : {}),
        ...(pieces ? { have: source.inProgress ? source.have?.() ?? 0 : size } : {}),
        ...(pieces && source.epoch !== undefined ? { epoch: source.epoch } : {}),
        ...(api !== undefined ? { api } : {})
      }
      const served = source
      const data =
        request.data === true && DATA_CHANNEL_PROTOCOLS.includes(stream.protocol ?? '') && length >= DATA_MIN_BYTES && api === undefined
          ? this.components.data?.offer(connection.remotePeer.toString(), socket => {
            void this.sendOverDataChannel(
              socket,
              served.stream(start, end, pieces),
              start,
              end,
              log,
              key,
              pieces,
              connection.remotePeer.toString()
            ).finally(() => {
              void this.finish(served)
            })
          }, () => {
            void this.finish(served)
          })
          : undefined
      if (data !== undefined) {
        handedOff = true
        await reply({ ...header, data })
        return
      }
      await lp.write(encodeFrame(header), { signal: AbortSignal.timeout(this.idleTimeoutMs) })
      const raw = lp.unwrap()
      if (length > 0) {
        await sendBody(source.stream(start, end, pieces), streamSink(raw), this.idleTimeoutMs, n => {
          stats.inc('bytes_served_to_peers', n)
          stats.peerTraffic.add(peer, 'sent', n)
        }, this.rate)
      }
      await raw.close({ signal: AbortSignal.timeout(this.idleTimeoutMs) })
      if (pieces && length > 0) this.servedPieces(connection.remotePeer.toString(), length)
      log.debug({ digest: key, start, length, inProgress: source.inProgress }, 'served blob to peer')
    } catch (err) {
      log.warn({ digest: key, err: (err as Error).message }, 'fetch from peer ended early')
      stream.abort(err as Error)
    } finally {
      if (!handedOff) await this.finish(source)
    }
  }

  /**
   * Where `blob` is served from: its stored copy, else (with `downloads`) this node's download
   * of it in progress, waited for briefly, since the peer waits for the header only
   * CACHE_PEER_FIRST_BYTE_TIMEOUT (`pending`: its upstream has not answered yet; the peer is
   * told `busy` and asks again). A download committed between the two lookups is found in the
   * store. The caller releases what it gets.
   */
  private async lookup (
    blob: Digest,
    downloads: boolean
  ): Promise<{ stored: BlobHandle } | { growing: GrowingBlob } | 'pending' | undefined> {
    const stored = await this.components.store.openRead(blob)
    if (stored !== undefined) return { stored }
    if (!downloads) return undefined
    const growing = await this.components.inProgress(blob, { signal: AbortSignal.timeout(IN_PROGRESS_READY_WAIT_MS) }).catch(() =>
      undefined
    )
    if (growing === 'pending') return 'pending'
    if (growing !== undefined) return { growing }
    const committed = await this.components.store.openRead(blob)
    return committed === undefined ? undefined : { stored: committed }
  }

  /**
   * Answers a `hashes` request (fetch/1.2.0) from the stored blob (hashed once, then kept) or the
   * download in progress (waiting up to HASHES_WAIT_MS for a next piece). Takes no upload slot:
   * the answer is a header.
   */
  private async serveHashes (
    blob: Digest,
    from: NonNullable<FetchRequest['hashes']>,
    reply: (header: FetchResponseHeader) => Promise<void>,
    log: Logger
  ): Promise<void> {
    const found = await this.lookup(blob, true)
    if (found === 'pending') {
      await reply({ status: 'busy', message: 'fetching it; the upstream has not answered yet', have: 0 })
      return
    }
    if (found === undefined) {
      await reply({ status: 'not_found' })
      return
    }
    if ('stored' in found) {
      const local = found.stored
      try {
        // A stored copy is hashed on the first request (a read of the whole file): a large one
        // is `busy` meanwhile, so the peer's first-byte budget still tells a hung node apart.
        const hashing = this.storedHashes.of(blob, async () => await this.components.store.openRead(blob))
        const hasher = await Promise.race([hashing, delay(STORED_HASHES_WAIT_MS, undefined, { ref: false })])
        if (hasher === undefined) {
          hashing.catch(() => {})
          await reply({ status: 'busy', message: 'hashing its stored copy into pieces' })
          return
        }
        const size = local.record.size
        await reply({
          status: 'ok',
          size,
          start: 0,
          length: 0,
          have: size,
          hashes: { pieceSize: PIECE_SIZE, from, hex: hasher.hex(from, MAX_HASHES_PER_ANSWER) }
        })
      } finally {
        await local.release()
      }
      return
    }
    const growing = found.growing
    try {
      if (growing.size === undefined || growing.pieceHashes === undefined) {
        await reply({ status: 'not_found' })
        return
      }
      const hex = await growing.pieceHashes(from, MAX_HASHES_PER_ANSWER, { signal: AbortSignal.timeout(HASHES_WAIT_MS) })
      // Read with the hashes: a copy that starts over replaces both at once.
      const epoch = growing.epoch
      log.debug({ digest: blob, from, count: hex.length / 64 }, 'served piece hashes to peer')
      await reply({
        status: 'ok',
        size: growing.size,
        start: 0,
        length: 0,
        have: growing.have?.() ?? 0,
        ...(epoch !== undefined ? { epoch } : {}),
        hashes: { pieceSize: PIECE_SIZE, from, hex }
      })
    } finally {
      await growing.release()
    }
  }

  /** A transfer is over (served, failed, or its offer expired): its slot and source go. */
  private async finish (source: GrowingBlob | undefined): Promise<void> {
    this.uploads--
    await source?.release()
  }

  /** A piece request (a run of pieces, `bytes` long) was served to `peer`. */
  private servedPieces (peer: string, bytes: number): void {
    this.components.stats.inc('pieces_served_to_peers')
    this.components.stats.peerPieces.add(peer, 'served', Math.ceil(bytes / PIECE_SIZE), bytes)
  }

  /** Sends `body` (bytes [start, end) of a blob) over a data channel connection, then ends it. */
  private async sendOverDataChannel (
    socket: TLSSocket,
    body: Readable,
    start: number,
    end: number,
    log: Logger,
    key: string,
    pieces: boolean,
    peer: string
  ): Promise<void> {
    try {
      await sendBody(body, socketSink(socket), this.idleTimeoutMs, n => {
        this.components.stats.inc('bytes_served_to_peers', n)
        this.components.stats.peerTraffic.add(peer, 'sent', n)
      }, this.rate)
      await new Promise<void>(resolve => {
        socket.end(resolve)
      })
      if (pieces) this.servedPieces(peer, end - start)
      log.debug({ digest: key, start, length: end - start }, 'served blob to peer over the data channel')
    } catch (err) {
      log.warn({ digest: key, err: (err as Error).message }, 'fetch from peer over the data channel ended early')
      socket.destroy()
    }
  }
}

/** A stored copy as a transfer's source (the store's byte ranges are inclusive; a source's end is not). */
function storedSource (local: BlobHandle): GrowingBlob & { size: number, inProgress: boolean } {
  return {
    size: local.record.size,
    inProgress: false,
    release: local.release,
    ...(local.record.mediaType !== undefined ? { mediaType: local.record.mediaType } : {}),
    stream: (start, end) => local.stream(start, end === undefined ? undefined : end - 1)
  }
}
