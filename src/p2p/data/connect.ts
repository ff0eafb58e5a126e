import type { AbortOptions } from '@libp2p/interface'
import { connect, type TLSSocket } from 'node:tls'
import { DATA_TLS_CIPHERS } from './constants.js'
import type { DataOffer } from './server.js'
import { P2pCacheError } from '../../errors/p2p-cache-error.js'

/**
 * The data channel could not be set up within its budget. `portReachable`: the TCP connection
 * was made and only the TLS handshake was late (a loaded peer), which says nothing against the
 * port, unlike a refused or silent one.
 */
export class DataConnectTimeoutError extends P2pCacheError {
  constructor (message: string, readonly portReachable: boolean) {
    super(message)
  }
}

/**
 * Connects to a peer's data channel and completes the TLS 1.3 handshake with the offer's
 * one-time key. Rejects (and leaves nothing open) on a refused or unreachable port, a failed
 * handshake, `timeoutMs` (DataConnectTimeoutError) or `signal`.
 */
export async function connectData (host: string, offer: DataOffer, timeoutMs: number, options: Required<AbortOptions>): Promise<TLSSocket> {
  const { signal } = options
  const psk = Buffer.from(offer.key, 'hex')
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
  return await new Promise<TLSSocket>((resolve, reject) => {
    const socket = connect({
      host,
      port: offer.port,
      minVersion: 'TLSv1.3',
      ciphers: DATA_TLS_CIPHERS,
      pskCallback: () => ({ psk, identity: offer.ticket }),
      // No certificate: the one-time key authenticates both ends.
      checkServerIdentity: () => undefined
    })
    const fail = (err: Error): void => {
      cleanup()
      socket.destroy()
      reject(err)
    }
    let tcpConnected = false
    socket.once('connect', () => {
      tcpConnected = true
    })
    const onAbort = (): void => {
      fail(
        signal.aborted
          ? signal.reason as Error
          : new DataConnectTimeoutError(
            `no TLS connection to ${host}:${offer.port} within ${timeoutMs} ms${
              tcpConnected ? ' (the port answered; the handshake was late)' : ''
            }`,
            tcpConnected
          )
      )
    }
    const onConnect = (): void => {
      cleanup()
      // Later failures reach the reader through 'close'; an unheard 'error' would end the process.
      socket.on('error', () => {})
      resolve(socket)
    }
    const cleanup = (): void => {
      deadline.removeEventListener('abort', onAbort)
      socket.off('secureConnect', onConnect)
      socket.off('error', fail)
    }
    if (deadline.aborted) {
      onAbort()
      return
    }
    deadline.addEventListener('abort', onAbort)
    socket.once('secureConnect', onConnect)
    socket.once('error', fail)
  })
}
