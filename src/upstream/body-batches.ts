import type { Readable } from 'node:stream'
import { readableSource } from '../io/byte-source.js'
import { ChunkQueue } from '../io/chunk-queue.js'

/**
 * Reads a response body as batches of the chunks that arrived while the consumer was busy (one
 * vectored file write each), without joining them: `for await` over a Readable joins everything
 * buffered into a new Buffer on every read, a copy of the whole body and garbage that triggers
 * major GCs. Above `highWater` queued bytes the body is paused (the TCP window then holds the
 * sender). Throws the body's error; a body that closes before its end is an error too.
 */
export async function* bodyBatches (body: Readable, highWater: number): AsyncGenerator<Buffer[]> {
  const queue = new ChunkQueue(readableSource(body), highWater)
  try {
    for (;;) {
      if (queue.bytes > 0) {
        yield queue.take()
        continue
      }
      if (queue.error !== undefined) throw queue.error
      if (queue.ended) return
      await queue.next()
    }
  } finally {
    queue.close()
  }
}
