import type { AbortOptions, Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { P2pNode } from '../node.js'
import type { PeerRef } from '../fetch/client.js'
import { FrameError } from '../json-frame.js'
import { exchangeFrame } from '../frame-exchange.js'
import { HOLD_MAX_REQUEST_BYTES, HOLD_MAX_STREAMS, HOLD_PROTOCOL, HOLD_SERVE_MAX_MS } from './constants.js'
import {
  decodeHoldAnswer,
  decodeHoldRequest,
  encodeHoldFrame,
  MAX_HOLD_MESSAGE_CHARS,
  type HoldAnswer,
  type HoldRequest
} from './frames.js'

/** What this node does with a peer's hold request (the local namespace's replica keeper). */
export type HoldHandler = (request: HoldRequest, from: PeerRef, options: Required<AbortOptions>) => Promise<HoldAnswer>

export interface HoldServiceComponents {
  node: P2pNode
  /** Undefined: this node answers every request `refused` (it keeps no replicas). */
  hold?: HoldHandler | undefined
  log: Logger
}

const MAX_ANSWER_BYTES = 4 * 1024

/** Serves `/p2p-cache/hold/1.0.0` with the injected handler, and asks peers (see frames.ts). */
export class HoldService {
  constructor (private readonly components: HoldServiceComponents) {}

  async start (): Promise<void> {
    await this.components.node.handle(HOLD_PROTOCOL, (stream, connection) => {
      void this.serve(stream, connection)
    }, { maxInboundStreams: HOLD_MAX_STREAMS, maxOutboundStreams: HOLD_MAX_STREAMS })
  }

  async stop (): Promise<void> {
    await this.components.node.unhandle(HOLD_PROTOCOL)
  }

  /**
   * Asks `peer` (a peer ID, connected) to hold `request`; resolves with its answer. Rejects when
   * the peer can't be reached, does not speak the protocol, or `options.signal` aborts first.
   */
  async ask (peer: string, request: HoldRequest, options: Required<AbortOptions>): Promise<HoldAnswer> {
    const { signal } = options
    const stream = await this.components.node.dialProtocol(peerIdFromString(peer), HOLD_PROTOCOL, { signal })
    return await exchangeFrame(stream, encodeHoldFrame(request), decodeHoldAnswer, { signal, maxAnswerBytes: MAX_ANSWER_BYTES })
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(HOLD_SERVE_MAX_MS)
    const lp = lpStream(stream, { maxDataLength: HOLD_MAX_REQUEST_BYTES })
    const from: PeerRef = { id: connection.remotePeer, multiaddrs: [connection.remoteAddr] }
    try {
      let answer: HoldAnswer
      try {
        const request = decodeHoldRequest((await lp.read({ signal })).subarray())
        answer = this.components.hold === undefined
          ? { status: 'refused', message: 'this node keeps no replicas' }
          : await this.components.hold(request, from, { signal })
      } catch (err) {
        if (!(err instanceof FrameError)) throw err
        this.components.log.warn({ peer: from.id.toString(), err: err.message }, 'bad hold request from peer')
        answer = { status: 'bad_request', message: err.message }
      }
      if (answer.status !== 'held') answer = { ...answer, message: answer.message.slice(0, MAX_HOLD_MESSAGE_CHARS) }
      await lp.write(encodeHoldFrame(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      this.components.log.info({ peer: from.id.toString(), err: (err as Error).message }, 'hold request not answered')
      stream.abort(err as Error)
    }
  }
}
