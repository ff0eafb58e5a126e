import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { MAX_READ_BUFFER } from '../constants.js'
import type { ByteSource, ByteSourceHandlers } from '../../io/byte-source.js'

/** A libp2p stream (libp2p 3 message stream) as a ByteSource. */
export function streamSource (stream: Stream): ByteSource {
  stream.maxReadBufferLength = MAX_READ_BUFFER
  let handlers: ByteSourceHandlers | undefined
  const onMessage = (evt: StreamMessageEvent): void => {
    const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
    handlers?.data(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
  }
  const onClose = (evt: StreamCloseEvent): void => {
    handlers?.end(evt.error)
  }
  const onEnd = (): void => {
    handlers?.end()
  }
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
    pause: stillWanted => {
      queueMicrotask(() => {
        if (stillWanted() && stream.readStatus === 'readable') stream.pause()
      })
    },
    resume: () => {
      if (stream.readStatus === 'paused') stream.resume()
    },
    get ended () {
      return stream.readableEnded ?? false
    }
  }
}
