import type { AbortOptions, Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { z } from 'zod'
import type { P2pNode } from './node.js'
import { decodeJsonFrame, encodeJsonFrame } from './json-frame.js'
import { exchangeFrame } from './frame-exchange.js'
import { DIALBACK_PROTOCOL, DIALBACK_TIMEOUT_MS, MAX_CONCURRENT_DIALBACKS, MAX_REQUEST_BYTES } from './constants.js'

/**
 * `/p2p-cache/dialback/1.0.0`: "dial this address of mine and tell me whether you reached me".
 * It is the only way to learn from inside a container whether its announced address really
 * leads back to it (published port, firewall). To keep it from being a way to make nodes dial
 * third parties, only an address with the IP the request's connection comes from is dialled.
 * One lp JSON frame each way: `{addr}` (ending in /p2p/<id>), then `{status, rttMs?, message?}`.
 */
export interface DialbackAnswer {
  status: 'ok' | 'failed' | 'refused' | 'busy' | 'bad_request'
  rttMs?: number
  message?: string
}

const requestSchema = z.strictObject({ addr: z.string().max(300) })
const answerSchema = z.strictObject({
  status: z.enum(['ok', 'failed', 'refused', 'busy', 'bad_request']),
  rttMs: z.number().min(0).optional(),
  message: z.string().max(1000).optional()
})

/** The IP of a multiaddr's first component, or undefined. */
function ipOf (text: string): string | undefined {
  const [host] = multiaddr(text).getComponents()
  return host !== undefined && (host.name === 'ip4' || host.name === 'ip6') ? host.value : undefined
}

export class DialbackServer {
  private active = 0

  constructor (private readonly components: { node: P2pNode, log: Logger }) {}

  async start (): Promise<void> {
    await this.components.node.handle(DIALBACK_PROTOCOL, (stream, connection) => {
      void this.serve(stream, connection)
    }, { maxInboundStreams: 2 })
  }

  async stop (): Promise<void> {
    await this.components.node.unhandle(DIALBACK_PROTOCOL)
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const signal = AbortSignal.timeout(DIALBACK_TIMEOUT_MS * 2)
    const reply = async (answer: DialbackAnswer): Promise<void> => {
      await lp.write(encodeJsonFrame(answer), { signal })
      await stream.close({ signal })
    }
    try {
      let addr: string
      try {
        addr = decodeJsonFrame((await lp.read({ signal })).subarray(), requestSchema, 'dial-back request').addr
        if (!/\/p2p\/[^/]+$/.test(addr) || ipOf(addr) === undefined) {
          throw new Error('addr must be /ip4|ip6/<address>/tcp/<port>/p2p/<peer id>')
        }
      } catch (err) {
        await reply({ status: 'bad_request', message: (err as Error).message })
        return
      }
      const from = ipOf(connection.remoteAddr.toString())
      if (ipOf(addr) !== from) {
        await reply({ status: 'refused', message: `only the address this request comes from (${from ?? 'unknown'}) is dialled back` })
        return
      }
      if (this.active >= MAX_CONCURRENT_DIALBACKS) {
        await reply({ status: 'busy' })
        return
      }
      this.active++
      const started = performance.now()
      try {
        // force: the asking node may be the very peer this connection is with; test the address itself.
        const conn = await this.components.node.dial(multiaddr(addr), { force: true, signal: AbortSignal.timeout(DIALBACK_TIMEOUT_MS) })
        const rttMs = Math.round((performance.now() - started) * 10) / 10
        await conn.close().catch(() => {})
        await reply({ status: 'ok', rttMs })
      } catch (err) {
        await reply({ status: 'failed', message: (err as Error).message.slice(0, 500) })
      } finally {
        this.active--
      }
    } catch (err) {
      this.components.log.debug({ err: (err as Error).message }, 'dialback request ended early')
      stream.abort(err as Error)
    }
  }
}

/** Asks the peer on `connection` to dial `addr` (this node's, with /p2p/<id>) back. */
export async function requestDialback (connection: Connection, addr: string, options: Required<AbortOptions>): Promise<DialbackAnswer> {
  const { signal } = options
  const stream = await connection.newStream(DIALBACK_PROTOCOL, { signal })
  return await exchangeFrame(stream, encodeJsonFrame({ addr }), bytes => decodeJsonFrame(bytes, answerSchema, 'dial-back answer'), {
    signal,
    maxAnswerBytes: MAX_REQUEST_BYTES * 2
  })
}
