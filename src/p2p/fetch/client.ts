import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { P2pNode } from '../node.js'
import {
  DATA_CHANNEL_PROTOCOLS,
  DIAL_TIMEOUT_MS,
  FETCH_PROTOCOL_PIECES,
  FETCH_PROTOCOLS,
  IN_PROGRESS_IDLE_MS,
  MAX_HASHES_PER_ANSWER,
  MAX_RESPONSE_HEADER_BYTES,
  PIECE_SIZE
} from '../constants.js'
import { DATA_CONNECT_TIMEOUT_MS } from '../data/constants.js'
import { connectData, DataConnectTimeoutError } from '../data/connect.js'
import { isDigest } from '../../oci/digest.js'
import {
  decodeResponseHeader,
  encodeFrame,
  type ApiRecordAnswer,
  type FetchRequest,
  type FetchResponseHeader,
  type RecordAnswer,
  type TagAnswer
} from './frames.js'
import type { Digest } from '../../oci/digest.js'
import { PeerFetchError } from './errors.js'
import { receive } from './receive.js'
import { streamSource } from './byte-source.js'
import { readableSource } from '../../io/byte-source.js'

export interface PeerRef {
  id: PeerId
  multiaddrs: Multiaddr[]
}

export interface PeerBlob {
  peer: string
  /** Size of the whole blob, as the peer states it (verified by the digest at the end). */
  size: number
  start: number
  length: number
  mediaType?: string
  /** The peer is still fetching it: the bytes follow its download (held back until it verified the last). */
  inProgress: boolean
  /** The answer to a tag key. */
  tag?: TagAnswer
  /** The answer to an API key (its body is the bytes). */
  api?: ApiRecordAnswer
  /** The small record a record key asked for (a header-only answer). */
  record?: RecordAnswer
  /** The bytes came over the data channel (p2p/data), not the libp2p stream. */
  dataChannel: boolean
  /** 1.2.0: the peer is receiving the blob from other peers itself (a partial holder relaying verified pieces). */
  relayed?: boolean
  /** 1.2.0: bytes [0, have) of the blob are verified at the peer. */
  have?: number
  /** 1.2.0: which copy of the peer's download in progress the bytes come from (undefined: a stored copy). */
  epoch?: string
  /** The `length` bytes from `start`, in batches of chunks; see `receive`. */
  body: AsyncGenerator<Buffer[]>
  /** Ends the exchange early (reset); after `body` is done, closes it cleanly. */
  close: (err?: Error) => void
}

export interface FetchOptions {
  signal: AbortSignal
  /** No header, or no bytes, for this long: the peer is `stalled`. */
  idleMs: number
}

/** Whether blob bytes may come over the data channel (p2p/data), and what to do when it fails. */
export interface DataChannelUse {
  wanted: (peer: string) => boolean
  /** The peer's data port could not be reached (the bytes are then asked for over libp2p). */
  unreachable: (peer: string, err: Error) => void
}

/** The IP address and TCP of a connection's remote end, if that is what it is. */
function remoteHost (connection: Connection): string | undefined {
  const [host, tcp] = connection.remoteAddr.getComponents()
  return (host?.name === 'ip4' || host?.name === 'ip6') && tcp?.name === 'tcp' ? host.value : undefined
}

/**
 * Asks one peer for (a range of) a blob over `/p2p-cache/fetch/1.2.0` (1.1.0 or 1.0.0 with an
 * older peer; a `pieces` request to one is refused). With `data`, a blob's bytes may come over
 * the data channel instead: the peer's header carries a one-time key, and the bytes follow on a
 * TLS connection to the address this node reached the peer at. When that port can't be reached, `data.unreachable` is told and the same
 * request goes over libp2p. Throws PeerFetchError for anything the peer did wrong or could not do.
 */
export async function fetchFromPeer (
  node: P2pNode,
  peer: PeerRef,
  request: FetchRequest,
  opts: FetchOptions,
  data?: DataChannelUse
): Promise<PeerBlob> {
  const name = peer.id.toString()
  const { stream, connection } = await openFetchStream(node, peer, opts)
  try {
    if (request.pieces === true && stream.protocol !== FETCH_PROTOCOL_PIECES) {
      throw new PeerFetchError(
        name,
        'refused',
        `speaks ${stream.protocol ?? 'an older fetch protocol'}, without pieces (${FETCH_PROTOCOL_PIECES})`
      )
    }
    const host = remoteHost(connection)
    const askData = data !== undefined && host !== undefined && DATA_CHANNEL_PROTOCOLS.includes(stream.protocol ?? '') &&
      isDigest(request.key) && data.wanted(name)
    const { lp, header } = await exchange(stream, name, askData ? { ...request, data: true } : request, opts)
    const { size, start, length } = header as Required<Pick<typeof header, 'size' | 'start' | 'length'>>
    const wantedStart = request.start ?? 0
    const wantedEnd = request.end === undefined ? size : Math.min(request.end, size)
    if (start !== wantedStart || length !== Math.max(0, wantedEnd - wantedStart)) {
      throw new PeerFetchError(name, 'protocol', `answered bytes ${start}+${length} to a request for ${wantedStart}-${wantedEnd}`)
    }
    // A download in progress comes at its upstream's pace, which no other source beats: only
    // a longer silence drops it, not a low average rate.
    const inProgress = header.inProgress === true
    const idleMs = inProgress ? Math.max(opts.idleMs, IN_PROGRESS_IDLE_MS) : opts.idleMs
    const answer = {
      peer: name,
      size,
      start,
      length,
      inProgress,
      ...(header.mediaType !== undefined ? { mediaType: header.mediaType } : {}),
      ...(header.tag !== undefined ? { tag: header.tag } : {}),
      ...(header.api !== undefined ? { api: header.api } : {}),
      ...(header.record !== undefined ? { record: header.record } : {}),
      ...(header.relayed === true ? { relayed: true } : {}),
      ...(header.have !== undefined ? { have: Math.min(header.have, size) } : {}),
      ...(header.epoch !== undefined ? { epoch: header.epoch } : {})
    }
    if (header.data !== undefined) {
      if (!askData || host === undefined) throw new PeerFetchError(name, 'protocol', 'offered the data channel unasked')
      void stream.close({ signal: AbortSignal.timeout(opts.idleMs) }).catch(e => {
        stream.abort(e as Error)
      })
      let socket
      try {
        socket = await connectData(host, header.data, Math.min(DATA_CONNECT_TIMEOUT_MS, opts.idleMs), { signal: opts.signal })
      } catch (err) {
        if (opts.signal.aborted) throw err
        // A late handshake on a port that answered is load, not a closed port: only this
        // transfer goes over libp2p (issue 23: one slow handshake cost a peer's data channel for 10 minutes).
        if (!(err instanceof DataConnectTimeoutError && err.portReachable)) data.unreachable(name, err as Error)
        return await fetchFromPeer(node, peer, request, opts)
      }
      const received = receive(readableSource(socket), name, length, idleMs, { signal: opts.signal, minRate: !inProgress })
      return {
        ...answer,
        dataChannel: true,
        body: received.body,
        // Every byte is in once the body is done: nothing is left to say on the socket.
        close: () => {
          received.stop()
          socket.destroy()
        }
      }
    }
    const raw = lp.unwrap()
    const received = receive(streamSource(raw), name, length, idleMs, { signal: opts.signal, minRate: !inProgress })
    return {
      ...answer,
      dataChannel: false,
      body: received.body,
      close: (err?: Error) => {
        received.stop()
        if (err !== undefined) raw.abort(err)
        else {
          void raw.close({ signal: AbortSignal.timeout(opts.idleMs) }).catch(e => {
            raw.abort(e as Error)
          })
        }
      }
    }
  } catch (err) {
    stream.abort(err as Error)
    // Anything that went wrong on this peer's stream is that peer's failure: try the next one.
    throw err instanceof PeerFetchError ? err : new PeerFetchError(name, 'protocol', (err as Error).message)
  }
}

/** The stream a fetch goes over: the peer dialled (its addresses merged first), the protocol negotiated. */
async function openFetchStream (node: P2pNode, peer: PeerRef, opts: FetchOptions): Promise<{ stream: Stream, connection: Connection }> {
  const name = peer.id.toString()
  try {
    if (peer.multiaddrs.length > 0) await node.peerStore.merge(peer.id, { multiaddrs: peer.multiaddrs })
    const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(Math.min(DIAL_TIMEOUT_MS, opts.idleMs))])
    const connection = await node.dial(peer.id, { signal })
    return { stream: await connection.newStream(FETCH_PROTOCOLS, { signal }), connection }
  } catch (err) {
    throw new PeerFetchError(name, 'dial', `could not open a fetch stream: ${(err as Error).message}`)
  }
}

/**
 * Sends the request and reads the response header within `opts.idleMs`; a status other than
 * `ok` becomes the PeerFetchError it means (`busy` carries the peer's `have`).
 */
async function exchange (
  stream: Stream,
  name: string,
  request: FetchRequest,
  opts: FetchOptions
): Promise<{ lp: ReturnType<typeof lpStream<Stream>>, header: FetchResponseHeader }> {
  const lp = lpStream(stream, { maxDataLength: MAX_RESPONSE_HEADER_BYTES })
  const headerSignal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.idleMs)])
  let header
  try {
    await lp.write(encodeFrame(request), { signal: headerSignal })
    header = decodeResponseHeader((await lp.read({ signal: headerSignal })).subarray())
  } catch (err) {
    const stalled = headerSignal.aborted && !opts.signal.aborted
    throw new PeerFetchError(
      name,
      stalled ? 'stalled' : 'protocol',
      stalled ? `no answer within ${opts.idleMs} ms` : (err as Error).message
    )
  }
  if (header.status !== 'ok') {
    const reason = header.status === 'not_found' ? 'not_found' : header.status === 'busy' ? 'busy' : 'refused'
    throw new PeerFetchError(
      name,
      reason,
      `answered ${header.status}${header.message !== undefined ? `: ${header.message}` : ''}`,
      header.have
    )
  }
  return { lp, header }
}

/** Piece hashes of a blob from one peer's copy (fetch/1.2.0 `hashes`). */
export interface PieceHashAnswer {
  peer: string
  /** Size of the whole blob, as the peer states it. */
  size: number
  /** Bytes [0, have) of the blob are verified at the peer. */
  have: number
  from: number
  /** Which copy of the peer's download in progress the hashes describe (undefined: a stored copy). */
  epoch?: string
  /** One 64-hex sha256 per piece, pieces `from`, `from + 1`, ... (none yet is possible). */
  hashes: string[]
}

/**
 * Asks `peer` for the piece hashes of `key` from piece `from` on (fetch/1.2.0). A peer still
 * fetching the blob answers once it has at least one more, or with none when it waited long
 * enough; ask again from where the answer ends.
 * @throws PeerFetchError: `refused` when the peer speaks no pieces (older version) or uses another
 * piece size; the usual reasons otherwise
 */
export async function fetchPieceHashes (
  node: P2pNode,
  peer: PeerRef,
  key: Digest,
  from: number,
  opts: FetchOptions
): Promise<PieceHashAnswer> {
  const name = peer.id.toString()
  const { stream } = await openFetchStream(node, peer, opts)
  try {
    if (stream.protocol !== FETCH_PROTOCOL_PIECES) {
      throw new PeerFetchError(
        name,
        'refused',
        `speaks ${stream.protocol ?? 'an older fetch protocol'}, without pieces (${FETCH_PROTOCOL_PIECES})`
      )
    }
    const { header } = await exchange(stream, name, { key, hashes: from }, opts)
    const hashes = header.hashes
    if (hashes === undefined || header.size === undefined) {
      throw new PeerFetchError(name, 'protocol', 'answered a hashes request without hashes')
    }
    if (hashes.pieceSize !== PIECE_SIZE) {
      throw new PeerFetchError(name, 'refused', `cuts blobs into pieces of ${hashes.pieceSize} bytes, not ${PIECE_SIZE}`)
    }
    if (hashes.from !== from) {
      throw new PeerFetchError(name, 'protocol', `answered hashes from piece ${hashes.from} to a request from ${from}`)
    }
    const list = hashes.hex.match(/.{64}/g) ?? []
    if (list.length > MAX_HASHES_PER_ANSWER || from + list.length > Math.ceil(header.size / PIECE_SIZE)) {
      throw new PeerFetchError(name, 'protocol', `answered ${list.length} hashes from piece ${from} for a blob of ${header.size} bytes`)
    }
    void stream.close({ signal: AbortSignal.timeout(opts.idleMs) }).catch(e => {
      stream.abort(e as Error)
    })
    return {
      peer: name,
      size: header.size,
      have: Math.min(header.have ?? 0, header.size),
      from,
      hashes: list,
      ...(header.epoch !== undefined ? { epoch: header.epoch } : {})
    }
  } catch (err) {
    stream.abort(err as Error)
    throw err instanceof PeerFetchError ? err : new PeerFetchError(name, 'protocol', (err as Error).message)
  }
}
