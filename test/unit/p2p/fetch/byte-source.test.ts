import assert from 'node:assert/strict'
import { streamSource } from '../../../../src/p2p/fetch/byte-source.js'
import { MAX_READ_BUFFER } from '../../../../src/p2p/constants.js'
import type { ByteSourceHandlers } from '../../../../src/io/byte-source.js'
import { FakeMessageStream } from '../../fakes/message-stream.js'

/** Handlers that record what the source reported. */
function recorder (): ByteSourceHandlers & { bytes: Buffer[], ends: Array<Error | undefined> } {
  const bytes: Buffer[] = []
  const ends: Array<Error | undefined> = []
  return {
    bytes,
    ends,
    data: buf => {
      bytes.push(buf)
    },
    end: err => {
      ends.push(err)
    }
  }
}

describe('streamSource: a libp2p message stream as a ByteSource', () => {
  it('a paused stream holds a full yamux window in flight without being reset (read buffer up to MAX_READ_BUFFER)', async () => {
    const stream = new FakeMessageStream()
    const source = streamSource(stream)
    const r = recorder()
    source.listen(r)
    source.pause(() => true)
    await Promise.resolve()
    stream.peerSends(Buffer.alloc(20 * 1024 * 1024))
    assert.equal(stream.status, 'open')
    assert.equal(r.bytes.length, 0, 'nothing delivered while paused')
    source.resume()
    assert.equal(Buffer.concat(r.bytes).length, 20 * 1024 * 1024)
    assert.equal(stream.maxReadBufferLength, MAX_READ_BUFFER)
    source.unlisten()
  })

  it('a pause asked for inside a message that resume() dispatched holds (it is not undone by resume)', async () => {
    const stream = new FakeMessageStream()
    const source = streamSource(stream)
    let received = 0
    source.listen({
      data: buf => {
        received += buf.length
        source.pause(() => true)
      },
      end: () => {}
    })
    source.pause(() => true)
    await Promise.resolve()
    stream.peerSends(Buffer.alloc(5))
    source.resume()
    await Promise.resolve()
    assert.equal(received, 5)
    assert.equal(stream.readStatus, 'paused')
    assert.equal(stream.pausedByReader, true, 'the peer was told to pause after the resume')
    source.unlisten()
  })

  it('a pause no longer wanted by the time it runs (the consumer drained meanwhile) is skipped', async () => {
    const stream = new FakeMessageStream()
    const source = streamSource(stream)
    source.listen(recorder())
    source.pause(() => false)
    await Promise.resolve()
    assert.equal(stream.readStatus, 'readable')
    assert.equal(stream.pauses, 0)
    source.unlisten()
  })

  it("reports the end of the peer's bytes, and a failed transport with its error", () => {
    const ended = new FakeMessageStream()
    const source = streamSource(ended)
    const r = recorder()
    source.listen(r)
    ended.peerSends(Buffer.from('ab'))
    assert.equal(source.ended, false)
    ended.peerEnds()
    assert.deepEqual(Buffer.concat(r.bytes).toString(), 'ab')
    assert.equal(r.ends[0], undefined)
    assert.equal(source.ended, true)
    source.unlisten()

    const failed = new FakeMessageStream()
    const f = recorder()
    const fs = streamSource(failed)
    fs.listen(f)
    failed.transportFails(new Error('boom'))
    assert.ok(f.ends.some(e => e?.message === 'boom'), 'the error reaches the listener')
    fs.unlisten()
  })

  it('unlisten stops delivery, removes its listeners and resumes a paused stream', async () => {
    const stream = new FakeMessageStream()
    const own = stream.listenerCount('close')
    const source = streamSource(stream)
    const r = recorder()
    source.listen(r)
    source.pause(() => true)
    await Promise.resolve()
    source.unlisten()
    assert.equal(stream.readStatus, 'readable')
    assert.equal(stream.listenerCount('message'), 0)
    assert.equal(stream.listenerCount('close'), own)
    assert.equal(stream.listenerCount('end'), 0)
    stream.peerSends(Buffer.from('late'))
    assert.equal(r.bytes.length, 0)
  })
})
