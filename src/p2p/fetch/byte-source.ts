import type { Socket } from 'node:net'
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { MAX_READ_BUFFER } from '../constants.js'

/** What `receive` is told about a transport's incoming bytes. */
export interface ByteSourceHandlers {
  data: (buf: Buffer) => void
  /** The remote end finished sending, or the transport closed (with `err` when it failed). */
  end: (err?: Error) => void
}

/**
 * The incoming side of a fetch transfer, whatever carries it: a libp2p stream or the TLS
 * socket of the data channel. `pause` stops the sender through the transport's own flow control
 * (yamux window, TCP window).
 */
export interface ByteSource {
  listen: (handlers: ByteSourceHandlers) => void
  unlisten: () => void
  /** Pauses once the current dispatch is over, if `stillWanted()` holds then. */
  pause: (stillWanted: () => boolean) => void
  resume: () => void
  readonly ended: boolean
}

/** A libp2p stream (libp2p 3 message stream) as a ByteSource. */
export function streamSource (stream: Stream): ByteSource {
  stream.maxReadBufferLength = MAX_READ_BUFFER
  let handlers: ByteSourceHandlers | undefined
  const onMessage = (evt: StreamMessageEvent): void => {
    const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
    handlers?.data(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
  }
  const onClose = (evt: StreamCloseEvent): void => { handlers?.end(evt.error) }
  const onEnd = (): void => { handlers?.end() }
  return {
    listen: h => {
      handlers = h
      stream.addEventListener('message', onMessage)
      stream.addEventListener('close', onClose)
      stream.addEventListener('end', onEnd)
    },
    unlisten: () => {
      handlers = undefined
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('end', onEnd)
      if (stream.readStatus === 'paused') stream.resume()
    },
    // A pause() inside a 'message' handler dispatched by resume() is undone by resume itself:
    // defer it, and re-check that the consumer has not drained the queue meanwhile.
    pause: stillWanted => { queueMicrotask(() => { if (stillWanted() && stream.readStatus === 'readable') stream.pause() }) },
    resume: () => { if (stream.readStatus === 'paused') stream.resume() },
    get ended () { return stream.readableEnded ?? false }
  }
}

/** A connected socket (the data channel's TLS socket) as a ByteSource. */
export function socketSource (socket: Socket): ByteSource {
  let handlers: ByteSourceHandlers | undefined
  const onData = (buf: Buffer): void => { handlers?.data(buf) }
  const onEnd = (): void => { handlers?.end() }
  const onError = (err: Error): void => { handlers?.end(err) }
  const onClose = (): void => { handlers?.end(new Error('the connection closed')) }
  return {
    listen: h => {
      handlers = h
      socket.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
    },
    unlisten: () => {
      handlers = undefined
      socket.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
    },
    pause: stillWanted => { if (stillWanted()) socket.pause() },
    resume: () => { if (socket.isPaused()) socket.resume() },
    get ended () { return socket.readableEnded || socket.destroyed }
  }
}
