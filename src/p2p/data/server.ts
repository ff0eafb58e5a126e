import { randomBytes } from 'node:crypto'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { DATA_OFFER_TTL_MS, DATA_TLS_CIPHERS, MAX_DATA_OFFERS } from './constants.js'
import { P2pCacheError, EXIT_USAGE } from '../../errors/p2p-cache-error.js'

/** What a requester needs to take up a transfer on the data channel (sent in the fetch header). */
export interface DataOffer {
  /** TCP port of the data channel, on the address the requester reached this node at. */
  port: number
  /** PSK identity: 32 hex characters, one transfer. */
  ticket: string
  /** The pre-shared key: 64 hex characters. */
  key: string
}

export interface DataServerInit {
  /** Address to bind (the libp2p listen host). */
  host: string
  port: number
  /** When `port` is taken, bind any free port instead (the offers carry the port) with a warning. */
  anyPortIfTaken: boolean
}

/**
 * Where the data channel listens (CACHE_P2P_DATA_PORT): the host of the first libp2p listen
 * address; `auto` = that address's port + 1, or any free port when it is taken (or the P2P port
 * is 0); a number = exactly that port. Undefined when `off`.
 */
export function dataChannelAddress (listen: Multiaddr[], dataPort: number | 'auto' | 'off'): DataServerInit | undefined {
  if (dataPort === 'off') return undefined
  const [host, tcp] = listen[0]?.getComponents() ?? []
  const bindHost = host?.value ?? '0.0.0.0'
  if (dataPort !== 'auto') return { host: bindHost, port: dataPort, anyPortIfTaken: false }
  const p2pPort = Number(tcp?.value ?? '0')
  return { host: bindHost, port: p2pPort === 0 || p2pPort >= 65535 ? 0 : p2pPort + 1, anyPortIfTaken: true }
}

interface PendingOffer {
  key: Buffer
  peer: string
  take: (socket: TLSSocket) => void
  expire: () => void
  timer: NodeJS.Timeout
}

/** The data channel's port is taken and was set explicitly. */
export class DataListenError extends P2pCacheError {
  constructor (readonly host: string, readonly port: number, cause: Error) {
    super(
      `cannot listen on CACHE_P2P_DATA_PORT=${port} (${host}): ${cause.message}. Pick a free port, or CACHE_P2P_DATA_PORT=auto to take any free one`,
      { exitCode: EXIT_USAGE }
    )
  }
}

/**
 * The serving side of the data channel: a TLS 1.3 listener that knows no certificate, only
 * one-time pre-shared keys. `offer()` makes a key for one transfer, handed to the requester in
 * the authenticated fetch header; the connection that completes a handshake with it gets that
 * transfer (`take`) and nothing else. A handshake with any other key fails, so the port serves
 * nobody outside the swarm. Offers not taken within DATA_OFFER_TTL_MS are dropped (`expire`).
 */
export class DataServer {
  private readonly server: Server
  private readonly offers = new Map<string, PendingOffer>()
  /** The PSK identity each socket's handshake used (the callback sees the socket first). */
  private readonly identities = new WeakMap<TLSSocket, string>()
  private readonly sockets = new Set<TLSSocket>()
  private boundPort = 0

  constructor (private readonly components: { log: Logger }, private readonly init: DataServerInit) {
    this.server = createServer({
      minVersion: 'TLSv1.3',
      ciphers: DATA_TLS_CIPHERS,
      handshakeTimeout: DATA_OFFER_TTL_MS,
      pskCallback: (socket, identity) => {
        const offer = this.offers.get(identity)
        if (offer === undefined) return null
        this.identities.set(socket, identity)
        return offer.key
      }
    }, socket => {
      this.accept(socket)
    })
    // A port scan, an expired or unknown ticket: not this node's failure.
    this.server.on('tlsClientError', (err, socket) => {
      this.components.log.debug({ err: err.message, remote: socket.remoteAddress }, 'data channel handshake failed')
      socket.destroy()
    })
  }

  /** The bound port (valid after start). */
  get port (): number {
    return this.boundPort
  }

  /** Binds the port. Throws DataListenError when it can't (and may not fall back to any port). */
  async start (): Promise<void> {
    const bind = async (port: number): Promise<void> => {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => {
          reject(err)
        }
        this.server.once('error', onError)
        this.server.listen(port, this.init.host, () => {
          this.server.off('error', onError)
          resolve()
        })
      })
    }
    try {
      await bind(this.init.port)
    } catch (err) {
      if (!this.init.anyPortIfTaken || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
        throw new DataListenError(this.init.host, this.init.port, err as Error)
      }
      await bind(0)
      this.components.log.warn(
        { wanted: this.init.port, port: (this.server.address() as { port: number }).port },
        'the data channel port is taken: using another free port (peers learn it in each offer; publish it, or set CACHE_P2P_DATA_PORT, when peers reach this node through a port mapping)'
      )
    }
    this.boundPort = (this.server.address() as { port: number }).port
  }

  /**
   * A one-time key for a transfer to `peer`: `take` gets the socket once the requester connected
   * with it; `expire` is called instead when nobody did in time. Undefined when too many offers
   * are open (the caller sends the bytes over libp2p).
   */
  offer (peer: string, take: (socket: TLSSocket) => void, expire: () => void): DataOffer | undefined {
    if (this.offers.size >= MAX_DATA_OFFERS || !this.server.listening) return undefined
    const ticket = randomBytes(16).toString('hex')
    const key = randomBytes(32)
    const timer = setTimeout(() => {
      if (this.offers.delete(ticket)) expire()
    }, DATA_OFFER_TTL_MS)
    timer.unref()
    this.offers.set(ticket, { key, peer, take, expire, timer })
    return { port: this.boundPort, ticket, key: key.toString('hex') }
  }

  private accept (socket: TLSSocket): void {
    const ticket = this.identities.get(socket)
    const offer = ticket === undefined ? undefined : this.offers.get(ticket)
    if (ticket === undefined || offer === undefined) {
      socket.destroy()
      return
    }
    this.offers.delete(ticket)
    clearTimeout(offer.timer)
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    // A reset by the requester is its choice; the transfer's own code sees it as a failed write.
    socket.on('error', err => {
      this.components.log.debug({ peer: offer.peer, err: err.message }, 'data channel connection failed')
    })
    offer.take(socket)
  }

  async stop (): Promise<void> {
    for (const [ticket, offer] of this.offers) {
      clearTimeout(offer.timer)
      this.offers.delete(ticket)
      offer.expire()
    }
    for (const socket of this.sockets) socket.destroy()
    if (this.server.listening) {
      await new Promise<void>(resolve => {
        this.server.close(() => {
          resolve()
        })
      })
    }
  }
}
