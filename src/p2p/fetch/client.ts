import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { P2pNode } from '../node.js'
import { DIAL_TIMEOUT_MS, FETCH_PROTOCOL_DATA, FETCH_PROTOCOLS, IN_PROGRESS_IDLE_MS, MAX_RESPONSE_HEADER_BYTES } from '../constants.js'
import { DATA_CONNECT_TIMEOUT_MS } from '../data/constants.js'
import { connectData, DataConnectTimeoutError } from '../data/connect.js'
import { isDigest } from '../../oci/digest.js'
import { decodeResponseHeader, encodeFrame, type ApiAnswer, type FetchRequest, type TagAnswer } from './frames.js'
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
  api?: ApiAnswer
  /** The bytes came over the data channel (p2p/data), not the libp2p stream. */
  dataChannel: boolean
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
 * Asks one peer for (a range of) a blob over `/p2p-cache/fetch/1.1.0` (or 1.0.0 with an older
 * peer). With `data`, a blob's bytes may come over the data channel instead: the peer's header
 * carries a one-time key, and the bytes follow on a TLS connection to the address this node
 * reached the peer at. When that port can't be reached, `data.unreachable` is told and the same
 * request goes over libp2p. Throws PeerFetchError for anything the peer did wrong or could not do.
 */
export async function fetchFromPeer (node: P2pNode, peer: PeerRef, request: FetchRequest, opts: FetchOptions, data?: DataChannelUse): Promise<PeerBlob> {
  const name = peer.id.toString()
  let stream: Stream
  let connection: Connection
  try {
    if (peer.multiaddrs.length > 0) await node.peerStore.merge(peer.id, { multiaddrs: peer.multiaddrs })
    const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(Math.min(DIAL_TIMEOUT_MS, opts.idleMs))])
    connection = await node.dial(peer.id, { signal })
    stream = await connection.newStream(FETCH_PROTOCOLS, { signal })
  } catch (err) {
    throw new PeerFetchError(name, 'dial', `could not open a fetch stream: ${(err as Error).message}`)
  }
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_RESPONSE_HEADER_BYTES })
    const headerSignal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.idleMs)])
    const host = remoteHost(connection)
    const askData = data !== undefined && host !== undefined && stream.protocol === FETCH_PROTOCOL_DATA && isDigest(request.key) && data.wanted(name)
    let header
    try {
      await lp.write(encodeFrame(askData ? { ...request, data: true } : request), { signal: headerSignal })
      header = decodeResponseHeader((await lp.read({ signal: headerSignal })).subarray())
    } catch (err) {
      const stalled = headerSignal.aborted && !opts.signal.aborted
      throw new PeerFetchError(name, stalled ? 'stalled' : 'protocol', stalled ? `no answer within ${opts.idleMs} ms` : (err as Error).message)
    }
    if (header.status !== 'ok') {
      const reason = header.status === 'not_found' ? 'not_found' : header.status === 'busy' ? 'busy' : 'refused'
      throw new PeerFetchError(name, reason, `answered ${header.status}${header.message !== undefined ? `: ${header.message}` : ''}`)
    }
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
      ...(header.api !== undefined ? { api: header.api } : {})
    }
    if (header.data !== undefined) {
      if (!askData || host === undefined) throw new PeerFetchError(name, 'protocol', 'offered the data channel unasked')
      void stream.close({ signal: AbortSignal.timeout(opts.idleMs) }).catch(e => { stream.abort(e as Error) })
      let socket
      try {
        socket = await connectData(host, header.data, Math.min(DATA_CONNECT_TIMEOUT_MS, opts.idleMs), opts.signal)
      } catch (err) {
        if (opts.signal.aborted) throw err
        // A late handshake on a port that answered is load, not a closed port: only this
        // transfer goes over libp2p (issue 23: one slow handshake cost a peer's data channel for 10 minutes).
        if (!(err instanceof DataConnectTimeoutError && err.portReachable)) data.unreachable(name, err as Error)
        return await fetchFromPeer(node, peer, request, opts)
      }
      const received = receive(readableSource(socket), name, length, idleMs, opts.signal, { minRate: !inProgress })
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
    const received = receive(streamSource(raw), name, length, idleMs, opts.signal, { minRate: !inProgress })
    return {
      ...answer,
      dataChannel: false,
      body: received.body,
      close: (err?: Error) => {
        received.stop()
        if (err !== undefined) raw.abort(err)
        else void raw.close({ signal: AbortSignal.timeout(opts.idleMs) }).catch(e => { raw.abort(e as Error) })
      }
    }
  } catch (err) {
    stream.abort(err as Error)
    // Anything that went wrong on this peer's stream is that peer's failure: try the next one.
    throw err instanceof PeerFetchError ? err : new PeerFetchError(name, 'protocol', (err as Error).message)
  }
}
