import type { PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { P2pNode } from '../node.js'
import { DIAL_TIMEOUT_MS, FETCH_PROTOCOL, IN_PROGRESS_IDLE_MS, MAX_RESPONSE_HEADER_BYTES } from '../constants.js'
import { decodeResponseHeader, encodeFrame, type ApiAnswer, type FetchRequest, type TagAnswer } from './frames.js'
import { PeerFetchError } from './errors.js'
import { receive } from './receive.js'

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

/** Asks one peer for (a range of) a blob over `/p2p-cache/fetch/1.0.0`. */
export async function fetchFromPeer (node: P2pNode, peer: PeerRef, request: FetchRequest, opts: FetchOptions): Promise<PeerBlob> {
  const name = peer.id.toString()
  let stream: Stream
  try {
    if (peer.multiaddrs.length > 0) await node.peerStore.merge(peer.id, { multiaddrs: peer.multiaddrs })
    stream = await node.dialProtocol(peer.id, FETCH_PROTOCOL, { signal: AbortSignal.any([opts.signal, AbortSignal.timeout(Math.min(DIAL_TIMEOUT_MS, opts.idleMs))]) })
  } catch (err) {
    throw new PeerFetchError(name, 'dial', `could not open a fetch stream: ${(err as Error).message}`)
  }
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_RESPONSE_HEADER_BYTES })
    const headerSignal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.idleMs)])
    let header
    try {
      await lp.write(encodeFrame(request), { signal: headerSignal })
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
    const raw = lp.unwrap()
    // A download in progress comes at its upstream's pace, which no other source beats: only
    // a longer silence drops it, not a low average rate.
    const inProgress = header.inProgress === true
    const received = receive(raw, name, length, inProgress ? Math.max(opts.idleMs, IN_PROGRESS_IDLE_MS) : opts.idleMs, opts.signal, { minRate: !inProgress })
    return {
      peer: name,
      size,
      start,
      length,
      inProgress: header.inProgress === true,
      ...(header.mediaType !== undefined ? { mediaType: header.mediaType } : {}),
      ...(header.tag !== undefined ? { tag: header.tag } : {}),
      ...(header.api !== undefined ? { api: header.api } : {}),
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
