import { once } from 'node:events'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import type { Stream } from '@libp2p/interface'
import type { UploadRate } from './upload-rate.js'

/** Where a served blob's bytes go: a libp2p stream, or the data channel's socket. */
export interface BodySink {
  /** Queues bytes; false = the transport's buffer is full: wait for `onDrain`. */
  send: (buf: Uint8Array) => boolean
  /** Resolves when there is room again; rejects when the transport closed or `signal` aborts. */
  onDrain: (options: { signal: AbortSignal }) => Promise<void>
  addEventListener: (type: 'close', listener: () => void) => void
  removeEventListener: (type: 'close', listener: () => void) => void
}

/**
 * A libp2p stream as a BodySink. Its own `onDrain()` can't be trusted to wait: libp2p's message
 * stream (@libp2p/utils 7) keeps the promise of its first drain and hands it, already resolved,
 * to every later call, so a sender that awaits it runs ahead of a peer that stopped reading and
 * queues the rest of the blob in memory. This waits for the next 'drain' event itself, for as
 * long as the stream still holds unsent bytes.
 */
export function streamSink (stream: Stream): BodySink {
  const closed = new AbortController()
  stream.addEventListener('close', () => {
    closed.abort(new Error('the stream closed'))
  }, { once: true })
  return {
    send: buf => stream.send(buf),
    onDrain: async ({ signal }) => {
      while (stream.writableNeedsDrain || stream.writeBufferLength > 0) {
        await once(stream, 'drain', { signal: AbortSignal.any([signal, closed.signal]) })
      }
    },
    addEventListener: (type, listener) => {
      stream.addEventListener(type, listener)
    },
    removeEventListener: (type, listener) => {
      stream.removeEventListener(type, listener)
    }
  }
}

/** A socket as a BodySink (the data channel). */
export function socketSink (socket: Socket): BodySink {
  const closed = new AbortController()
  socket.once('close', () => {
    closed.abort(new Error('the connection closed'))
  })
  return {
    send: buf => socket.write(buf),
    onDrain: async ({ signal }) => {
      await once(socket, 'drain', { signal: AbortSignal.any([signal, closed.signal]) })
    },
    addEventListener: (_type, listener) => {
      if (socket.destroyed) queueMicrotask(listener)
      else socket.once('close', listener)
    },
    removeEventListener: (_type, listener) => {
      socket.off('close', listener)
    }
  }
}

/**
 * Copies `body` to `sink` with backpressure: at most one chunk beyond the transport's own buffer
 * is held, however slowly the peer reads. A transport that closes ends `body` (a download in
 * progress must not stay held by a peer that left); a peer that takes nothing for `idleMs`
 * fails the copy. `sent` counts each chunk (bytes). With `rate`, each chunk waits its turn under
 * the node's upload cap first.
 */
export async function sendBody (
  body: Readable,
  sink: BodySink,
  idleMs: number,
  sent: (bytes: number) => void,
  rate?: UploadRate
): Promise<void> {
  const closed = new AbortController()
  const onClose = (): void => {
    closed.abort(new Error('the peer closed the transfer'))
    body.destroy()
  }
  sink.addEventListener('close', onClose)
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer
      await rate?.take(buf.byteLength, { signal: closed.signal })
      sent(buf.byteLength)
      if (!sink.send(buf)) await sink.onDrain({ signal: AbortSignal.timeout(idleMs) })
    }
  } finally {
    sink.removeEventListener('close', onClose)
  }
}
