import type { Readable } from 'node:stream'

/** What a ByteSource tells its listener about incoming bytes. */
export interface ByteSourceHandlers {
  data: (buf: Buffer) => void
  /** The sender finished, or the transport closed (with `err` when it failed or closed early). */
  end: (err?: Error) => void
}

/**
 * Incoming bytes, whatever carries them: a libp2p stream (p2p/fetch), the data channel's TLS
 * socket, an upstream response body. `pause` stops the sender through the transport's own flow
 * control (yamux window, TCP window).
 */
export interface ByteSource {
  listen: (handlers: ByteSourceHandlers) => void
  unlisten: () => void
  /** Pauses once the current dispatch is over, if `stillWanted()` holds then. */
  pause: (stillWanted: () => boolean) => void
  resume: () => void
  readonly ended: boolean
}

/**
 * A Node Readable (a socket, a response body) as a ByteSource. A 'close' without 'end' (a reset,
 * a destroyed body) ends it with an error.
 */
export function readableSource (stream: Readable): ByteSource {
  let handlers: ByteSourceHandlers | undefined
  let endSeen = false
  const onData = (buf: Buffer): void => {
    handlers?.data(buf)
  }
  const onEnd = (): void => {
    endSeen = true
    handlers?.end()
  }
  const onError = (err: Error): void => {
    handlers?.end(err)
  }
  const onClose = (): void => {
    if (!endSeen) handlers?.end(new Error('the connection closed before the end'))
  }
  return {
    listen: h => {
      handlers = h
      stream.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
    },
    unlisten: () => {
      handlers = undefined
      stream.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
    },
    pause: stillWanted => {
      if (stillWanted()) stream.pause()
    },
    resume: () => {
      if (stream.isPaused()) stream.resume()
    },
    get ended () {
      return stream.readableEnded || stream.destroyed
    }
  }
}
