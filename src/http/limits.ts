import { readFileSync } from 'node:fs'
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import {
  CONNECTIONS_CHECK_INTERVAL_MS,
  DESCRIPTORS_PER_CONNECTION,
  DROP_WARN_INTERVAL_MS,
  FD_RESERVE,
  MAX_HEADER_SIZE,
  REQUEST_TIMEOUT_MS
} from './constants.js'

/** What a client may hold on a listener (src/http/constants.ts explains each; all in ms but the count). */
export interface HttpLimits {
  /** CACHE_HTTP_HEADER_TIMEOUT: time to send complete request headers. */
  headerTimeoutMs: number
  /** CACHE_HTTP_IDLE_TIMEOUT: a kept-alive connection without a request is closed after this. */
  idleTimeoutMs: number
  /** CACHE_HTTP_STALL_TIMEOUT: a client that takes no response byte (or sends no body byte) for this long is cut. */
  stallTimeoutMs: number
  /** CACHE_HTTP_MAX_CONNECTIONS, per listener, after `connectionBound`. */
  maxConnections: number
}

/**
 * The node:http / node:https server options for `limits`: header, request and keep-alive
 * timeouts, how often Node checks the first two (at least 4 times per header timeout, so a
 * connection is cut within 25% of it), header size; for HTTPS, the TLS handshake gets the
 * header timeout too (a client that connects and never finishes the handshake is the same
 * slow client).
 */
export function serverOptions (limits: HttpLimits): ServerOptions & { handshakeTimeout: number } {
  return {
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, limits.headerTimeoutMs),
    keepAliveTimeout: limits.idleTimeoutMs,
    connectionsCheckingInterval: Math.max(25, Math.min(CONNECTIONS_CHECK_INTERVAL_MS, Math.floor(limits.headerTimeoutMs / 4))),
    maxHeaderSize: MAX_HEADER_SIZE,
    handshakeTimeout: limits.headerTimeoutMs
  }
}

/** The request a socket is serving now (none between requests). */
interface InFlight {
  req: IncomingMessage
  res: ServerResponse
}

/**
 * Applies the limits Node has no option for, on a server made with `serverOptions(limits)`:
 *
 * - at most `maxConnections` open sockets; more are closed as they arrive (Node's
 *   `maxConnections`), with one warning per DROP_WARN_INTERVAL_MS;
 * - the stall timeout, as the sockets' inactivity timeout (`server.timeout`: no byte read or
 *   written, and no progress of a pending write, for `stallTimeoutMs`). When it fires, the
 *   socket is closed if the client is the one stalling: it holds response bytes it doesn't
 *   take (the socket has unsent bytes), or owes request-body bytes it doesn't send. Closing
 *   it aborts the response (its `clientLeft` signal), which releases the blob's file handle
 *   and store lease. If the sidecar is the slow side (waiting on an upstream or a peer, with
 *   nothing unsent), the timer is re-armed: those waits have their own timeouts. A socket
 *   between requests is closed (Node re-uses this timer for the idle timeout); one that has
 *   not sent its first request's headers yet is left to the header timeout.
 *   Node's timer does not fire while a pending write is still moving, and notices the stop at
 *   its next expiry: a stalled reader is cut between one and two stall timeouts after it
 *   stopped reading.
 */
export function guardConnections (server: Server | HttpsServer, limits: HttpLimits, log: Logger): void {
  server.maxConnections = limits.maxConnections
  let lastDropWarning = -Infinity
  let dropped = 0
  server.on('drop', () => {
    dropped++
    const now = Date.now()
    if (now - lastDropWarning < DROP_WARN_INTERVAL_MS) return
    lastDropWarning = now
    log.warn(
      { maxConnections: limits.maxConnections, droppedSinceLastWarning: dropped },
      'HTTP connection limit reached: new connections are closed until some end; raise CACHE_HTTP_MAX_CONNECTIONS if these are real clients'
    )
    dropped = 0
  })

  const inFlight = new WeakMap<Socket, InFlight>()
  /** Sockets that have had a request: past it, a timeout with none in flight is the idle (keep-alive) one. */
  const served = new WeakSet<Socket>()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket
    inFlight.set(socket, { req, res })
    served.add(socket)
    res.once('close', () => {
      if (inFlight.get(socket)?.res === res) inFlight.delete(socket)
    })
  })

  server.timeout = limits.stallTimeoutMs
  server.on('timeout', (socket: Socket) => {
    const current = inFlight.get(socket)
    if (current === undefined) {
      // Between requests, Node arms this timer with the idle timeout: it has passed. Before
      // the first request, the header timeout is the one that applies (Node enforces it).
      if (served.has(socket)) socket.destroy()
      else socket.setTimeout(limits.stallTimeoutMs)
      return
    }
    const { req, res } = current
    const notReading = socket.writableLength > 0 || res.writableNeedDrain
    const notSending = !req.complete
    if (!notReading && !notSending) {
      // The sidecar is the slow side: the client is waiting for us, which is not its fault.
      socket.setTimeout(limits.stallTimeoutMs)
      return
    }
    log.info(
      {
        method: req.method,
        url: req.url?.slice(0, 200),
        remote: socket.remoteAddress,
        sent: socket.bytesWritten,
        stallMs: limits.stallTimeoutMs
      },
      notReading
        ? 'client stopped reading the response: disconnected (CACHE_HTTP_STALL_TIMEOUT)'
        : 'client stopped sending the request body: disconnected (CACHE_HTTP_STALL_TIMEOUT)'
    )
    socket.destroy()
  })
}

/**
 * CACHE_HTTP_MAX_CONNECTIONS as this process can hold it: a connection takes up to
 * DESCRIPTORS_PER_CONNECTION descriptors, and running out of them fails the store (a blob file
 * that can't be opened) and the peers, not just new clients. When `configured` connections on
 * each of `listeners` listeners would leave fewer than FD_RESERVE descriptors under the
 * open-file limit (`limitsText`: the text of /proc/self/limits; Node has already raised the soft
 * limit to the hard one), the bound is lowered and a warning says how to raise the limit. Where
 * the limit can't be read, `configured`.
 */
export function connectionBound (configured: number, listeners: number, log: Logger, limitsText = readProcLimits()): number {
  const m = limitsText === undefined ? null : /^Max open files\s+(\d+|unlimited)\s/m.exec(limitsText)
  if (m === null || m[1] === 'unlimited') return configured
  const openFiles = Number(m[1])
  // A tiny limit (below twice the reserve) is shared half and half.
  const room = openFiles >= 2 * FD_RESERVE ? openFiles - FD_RESERVE : Math.floor(openFiles / 2)
  const fits = Math.max(1, Math.floor(room / (DESCRIPTORS_PER_CONNECTION * Math.max(1, listeners))))
  if (configured <= fits) return configured
  log.warn(
    { configured, openFileLimit: openFiles, listeners, maxConnections: fits },
    `CACHE_HTTP_MAX_CONNECTIONS=${configured} does not fit this process's open-file limit (${openFiles}): using ${fits} per listener. Raise the limit (ulimit -n, docker run --ulimit nofile=65536:65536, systemd LimitNOFILE=) or lower CACHE_HTTP_MAX_CONNECTIONS`
  )
  return fits
}

function readProcLimits (): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8')
  } catch {
    return undefined
  }
}
