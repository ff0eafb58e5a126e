import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { ChunkQueue } from '../../../src/io/chunk-queue.js'
import { readableSource } from '../../../src/io/byte-source.js'
import { FakeByteSource } from '../fakes/byte-source.js'

function text (batch: Buffer[]): string {
  return Buffer.concat(batch).toString()
}

describe('ChunkQueue: batches of received chunks with backpressure', () => {
  it('take returns everything queued, in order, and empties the queue', () => {
    const source = new FakeByteSource()
    const queue = new ChunkQueue(source, 1024)
    source.push('one ')
    source.push('two ')
    assert.equal(queue.bytes, 8)
    source.push('three')
    assert.equal(text(queue.take()), 'one two three')
    assert.equal(queue.bytes, 0)
    assert.deepEqual(queue.take(), [])
    source.push('four')
    assert.equal(text(queue.take()), 'four')
  })

  it('pauses the sender at the high-water mark and resumes it on take, losing nothing', () => {
    const source = new FakeByteSource()
    const queue = new ChunkQueue(source, 10)
    source.push('12345')
    assert.equal(source.paused, false, 'below the mark')
    source.push('67890')
    assert.equal(source.paused, true, 'at the mark the sender is held')
    source.push('abc')
    source.push('def')
    assert.equal(queue.bytes, 10, 'held bytes are not queued')
    assert.equal(source.heldBytes, 6)
    assert.equal(text(queue.take()), '1234567890')
    assert.equal(source.paused, false)
    assert.equal(text(queue.take()), 'abcdef', 'what the sender held arrives after, in order')
  })

  it('does not pause when the consumer took the bytes before the dispatch ended', () => {
    const source = new FakeByteSource()
    let queue: ChunkQueue | undefined
    let took = ''
    // A consumer that drains synchronously on each chunk (as a write loop can).
    source.listen = h => {
      FakeByteSource.prototype.listen.call(source, {
        data: b => {
          h.data(b)
          took += text(queue?.take() ?? [])
        },
        end: h.end
      })
    }
    queue = new ChunkQueue(source, 4)
    source.push('123456')
    assert.equal(took, '123456')
    assert.equal(source.paused, false, 'no longer full when the dispatch ended: the sender keeps going')
  })

  it('next() resolves on a chunk, on the end, and on fail()', async () => {
    const source = new FakeByteSource()
    const queue = new ChunkQueue(source, 1024)
    let waiting = queue.next()
    source.push('x')
    await waiting
    assert.equal(queue.bytes, 1)

    waiting = queue.next()
    queue.fail(new Error('timed out'))
    await waiting
    assert.equal(queue.error?.message, 'timed out')
    assert.equal(queue.ended, false, 'fail is the consumer giving up, not the sender ending')

    waiting = queue.next()
    source.finish()
    await waiting
    assert.equal(queue.ended, true)
    assert.equal(queue.error?.message, 'timed out', 'the first error is kept')
  })

  it('an end with an error is kept; a later fail does not hide it', async () => {
    const source = new FakeByteSource()
    const queue = new ChunkQueue(source, 1024)
    source.push('part')
    const waiting = queue.next()
    source.finish(new Error('stream reset'))
    await waiting
    assert.equal(queue.ended, true)
    assert.equal(queue.error?.message, 'stream reset')
    queue.fail(new Error('aborted'))
    assert.equal(queue.error?.message, 'stream reset')
    assert.equal(text(queue.take()), 'part', 'bytes before the failure are still there to take')
  })

  it('a clean end after all data leaves no error', () => {
    const source = new FakeByteSource()
    const queue = new ChunkQueue(source, 1024)
    source.push('all')
    source.finish()
    assert.equal(queue.ended, true)
    assert.equal(queue.error, undefined)
  })

  it('close stops listening: later chunks are not queued', () => {
    const source = new FakeByteSource()
    const queue = new ChunkQueue(source, 1024)
    assert.equal(source.listening, true)
    queue.close()
    assert.equal(source.listening, false)
    source.push('late')
    assert.equal(queue.bytes, 0)
  })

  it('over a real Readable: the stream is paused at the mark and a slow consumer still gets every byte in order', async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.from(`${String(i).padStart(3, '0')},`))
    const stream = Readable.from(chunks, { objectMode: false })
    const queue = new ChunkQueue(readableSource(stream), 64)
    let received = ''
    let pausedSeen = false
    while (true) {
      if (queue.bytes === 0 && !queue.ended) await queue.next()
      if (stream.isPaused()) pausedSeen = true
      assert.ok(queue.bytes < 64 + 4, `never more than one chunk past the mark (${queue.bytes})`)
      received += text(queue.take())
      if (queue.ended && queue.bytes === 0) break
      await new Promise(resolve => setImmediate(resolve))
    }
    queue.close()
    assert.equal(queue.error, undefined)
    assert.equal(received, Buffer.concat(chunks).toString())
    assert.equal(pausedSeen, true, 'the sender was held at least once')
  })
})
