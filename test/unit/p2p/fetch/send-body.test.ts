import assert from 'node:assert/strict'
import { Socket } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import { sendBody, socketSink, streamSink } from '../../../../src/p2p/fetch/send-body.js'
import { FakeMessageStream } from '../../fakes/message-stream.js'

/** Chunks of `size` bytes, the i-th filled with i. */
function chunks (count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.alloc(size, i))
}

/** Resolves once `cond` holds; fails after `ms`. */
async function until (cond: () => boolean, what: string, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setImmediate(resolve))
  }
}

/** Lets pending I/O callbacks and microtasks run a few times. */
async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
}

describe('sendBody: serving a blob to a peer with backpressure', () => {
  it('copies every chunk in order and counts the bytes', async () => {
    const stream = new FakeMessageStream()
    const counted: number[] = []
    await sendBody(Readable.from(chunks(4, 10)), streamSink(stream), 1_000, n => counted.push(n))
    assert.deepEqual(stream.sentBytes(), Buffer.concat(chunks(4, 10)))
    assert.deepEqual(counted, [10, 10, 10, 10])
  })

  it('stops when the peer stops reading, and goes on only as it reads: every drain is awaited, not just the first', async () => {
    const stream = new FakeMessageStream(100)
    const done = sendBody(Readable.from(chunks(6, 50)), streamSink(stream), 5_000, () => {})
    for (const sent of [100, 200]) {
      await until(() => stream.sentBytes().length === sent, `${sent} bytes sent`)
      await settle()
      assert.equal(stream.sentBytes().length, sent, 'nothing more until the peer reads')
      stream.peerReads()
    }
    await until(() => stream.sentBytes().length === 300, 'all bytes sent')
    stream.peerReads()
    await done
    assert.deepEqual(stream.sentBytes(), Buffer.concat(chunks(6, 50)))
  })

  it('a peer that reads nothing for idleMs fails the copy, and the body is let go', async () => {
    const stream = new FakeMessageStream(10)
    const body = Readable.from(chunks(5, 10))
    await assert.rejects(sendBody(body, streamSink(stream), 20, () => {}), (err: Error) => err.name === 'AbortError')
    assert.equal(body.destroyed, true)
  })

  it('a peer that leaves mid-body ends a download in progress at once (the body is destroyed), not after idleMs', async () => {
    const stream = new FakeMessageStream()
    const growing = new PassThrough()
    growing.write(Buffer.alloc(10))
    const done = sendBody(growing, streamSink(stream), 60_000, () => {})
    await until(() => stream.sentBytes().length === 10, 'the first bytes')
    stream.peerResets()
    await assert.rejects(done)
    assert.equal(growing.destroyed, true)
  })

  it('a transport that closes while the sender waits for a drain ends the wait at once', async () => {
    const stream = new FakeMessageStream(10)
    const started = Date.now()
    const done = sendBody(Readable.from(chunks(5, 10)), streamSink(stream), 60_000, () => {})
    await until(() => stream.sentBytes().length === 10, 'the window filled')
    stream.transportFails(new Error('connection lost'))
    await assert.rejects(done)
    assert.ok(Date.now() - started < 5_000)
  })

  it('an empty body sends nothing and ends', async () => {
    const stream = new FakeMessageStream()
    await sendBody(Readable.from([]), streamSink(stream), 1_000, () => {
      assert.fail('no bytes to count')
    })
    assert.equal(stream.sentBytes().length, 0)
  })

  it('socketSink: a close listener added to a socket already destroyed is still called', async () => {
    const socket = new Socket()
    socket.destroy()
    await new Promise<void>(resolve => {
      socketSink(socket).addEventListener('close', resolve)
    })
  })
})
