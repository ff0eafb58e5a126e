import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { receive } from '../../../../src/p2p/fetch/receive.js'
import { streamSource } from '../../../../src/p2p/fetch/byte-source.js'
import { PeerFetchError, type PeerFetchFailure } from '../../../../src/p2p/fetch/errors.js'
import { PEER_MIN_RATE, PEER_RATE_GRACE_MS, RECEIVE_HIGH_WATER } from '../../../../src/p2p/constants.js'
import { readableSource } from '../../../../src/io/byte-source.js'
import { FakeMessageStream } from '../../fakes/message-stream.js'
import { FakeClock } from '../../fakes/clock.js'

const MiB = 1024 * 1024
const never = new AbortController().signal

/** Every batch of `body`, joined. */
async function collect (body: AsyncGenerator<Buffer[]>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const batch of body) parts.push(...batch)
  return Buffer.concat(parts)
}

/** Asserts `promise` rejects with a PeerFetchError of `reason` whose message matches `why`. */
async function failsWith (promise: Promise<unknown>, reason: PeerFetchFailure, why: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PeerFetchError, `a PeerFetchError, got ${String(err)}`)
    assert.equal(err.reason, reason, err.message)
    assert.equal(err.peer, 'PeerA')
    assert.match(err.message, why)
    return true
  })
}

describe('receive: exactly `length` bytes from a peer, with backpressure and failure reasons', () => {
  it('delivers the announced bytes in order, including those that came with the header before iteration', async () => {
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 10, 1_000, { signal: never })
    stream.peerSends(Buffer.from('0123'))
    const done = collect(body)
    stream.peerSends(Buffer.from('456'))
    stream.peerSends(Buffer.from('789'))
    assert.equal((await done).toString(), '0123456789')
    assert.equal(stream.listenerCount('message'), 0, 'listeners removed at the end')
  })

  it('a length of 0 ends at once without waiting for the peer', async () => {
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 0, 1_000, { signal: never })
    assert.equal((await collect(body)).length, 0)
  })

  it('pauses the peer above RECEIVE_HIGH_WATER unread bytes and resumes it when the consumer takes them; nothing is lost', async () => {
    const stream = new FakeMessageStream()
    const chunk = (i: number): Buffer => Buffer.alloc(MiB, i)
    const total = Math.ceil(RECEIVE_HIGH_WATER / MiB) + 2
    const { body } = receive(streamSource(stream), 'PeerA', total * MiB, 1_000, { signal: never })
    for (let i = 0; i < total - 1; i++) stream.peerSends(chunk(i))
    await Promise.resolve()
    assert.equal(stream.pausedByReader, true, 'the peer was told to stop sending')
    stream.peerSends(chunk(total - 1))
    assert.equal(stream.status, 'open', 'bytes in flight while paused are buffered, not a reset')
    const first = await body.next()
    assert.equal(first.done, false)
    assert.equal(stream.pausedByReader, false, 'taking the batch resumed the peer')
    const rest = await collect(body)
    const got = Buffer.concat([...(first.value as Buffer[]), rest])
    assert.equal(got.length, total * MiB)
    for (let i = 0; i < total; i++) assert.equal(got[i * MiB], i, `chunk ${i} in place`)
  })

  it('a peer that sends nothing for idleMs is stalled, with how far it got', async () => {
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 10, 20, { signal: never })
    stream.peerSends(Buffer.from('abc'))
    await failsWith(collect(body), 'stalled', /sent nothing for 20 ms \(after 3 of 10 bytes\)/)
  })

  it('a peer that closes its side early has truncated the body', async () => {
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 10, 1_000, { signal: never })
    stream.peerSends(Buffer.from('abc'))
    const done = collect(body)
    stream.peerEnds()
    await failsWith(done, 'truncated', /closed the stream after 3 of 10 bytes/)
  })

  it("a reset or a failed connection mid-body is truncated too, with the transport's error", async () => {
    const reset = new FakeMessageStream()
    const a = receive(streamSource(reset), 'PeerA', 10, 1_000, { signal: never })
    reset.peerSends(Buffer.from('abc'))
    const doneA = collect(a.body)
    reset.peerResets()
    await failsWith(doneA, 'truncated', /after 3 of 10 bytes/)

    const broken = new FakeMessageStream()
    const b = receive(streamSource(broken), 'PeerA', 10, 1_000, { signal: never })
    const doneB = collect(b.body)
    broken.transportFails(new Error('connection reset by peer'))
    await failsWith(doneB, 'truncated', /stream failed after 0 of 10 bytes: connection reset by peer/)
  })

  it('a peer that sends more than it announced breaks the protocol', async () => {
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 4, 1_000, { signal: never })
    stream.peerSends(Buffer.from('abcdef'))
    await failsWith(collect(body), 'protocol', /sent more than the 4 bytes it announced/)
  })

  it('after the grace period, a peer trickling below PEER_MIN_RATE is stalled (a stored copy)', async () => {
    const clock = new FakeClock()
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 100, 1_000, { signal: never, clock })
    stream.peerSends(Buffer.alloc(10))
    assert.equal((await body.next()).done, false)
    clock.advance(PEER_RATE_GRACE_MS + 1)
    stream.peerSends(Buffer.alloc(10))
    await failsWith(body.next(), 'stalled', new RegExp(`sent 10 bytes in ${PEER_RATE_GRACE_MS + 1} ms, below ${PEER_MIN_RATE} bytes/s`))
  })

  it('a download in progress (minRate false) may be slow as long as it is not silent', async () => {
    const clock = new FakeClock()
    const stream = new FakeMessageStream()
    const { body } = receive(streamSource(stream), 'PeerA', 20, 1_000, { signal: never, clock, minRate: false })
    stream.peerSends(Buffer.alloc(10))
    assert.equal((await body.next()).done, false)
    clock.advance(10 * PEER_RATE_GRACE_MS)
    stream.peerSends(Buffer.alloc(10))
    assert.equal((await collect(body)).length, 10)
  })

  it('an abort ends the wait at once with its reason, and lets go of the stream', async () => {
    const stream = new FakeMessageStream()
    const ac = new AbortController()
    const { body } = receive(streamSource(stream), 'PeerA', 10, 60_000, { signal: ac.signal })
    const done = collect(body)
    await Promise.resolve()
    ac.abort(new Error('the client left'))
    await failsWith(done, 'truncated', /the client left/)
    assert.equal(stream.listenerCount('message'), 0)
  })

  it('stop() without reading (a header-only answer) lets go of the stream and resumes it if it was paused', async () => {
    const stream = new FakeMessageStream()
    const ownCloseListeners = stream.listenerCount('close')
    const { stop } = receive(streamSource(stream), 'PeerA', RECEIVE_HIGH_WATER * 2, 1_000, { signal: never })
    stream.peerSends(Buffer.alloc(RECEIVE_HIGH_WATER))
    await Promise.resolve()
    assert.equal(stream.readStatus, 'paused')
    stop()
    assert.equal(stream.readStatus, 'readable')
    assert.equal(stream.listenerCount('message'), 0)
    assert.equal(stream.listenerCount('close'), ownCloseListeners)
  })

  it('works the same over a socket-like Readable (the data channel)', async () => {
    const socket = new PassThrough()
    const { body } = receive(readableSource(socket), 'PeerA', 6, 1_000, { signal: never })
    socket.write('abc')
    const done = collect(body)
    socket.end('def')
    assert.equal((await done).toString(), 'abcdef')

    const cut = new PassThrough()
    const r = receive(readableSource(cut), 'PeerA', 6, 1_000, { signal: never })
    cut.write('abc')
    const failed = collect(r.body)
    cut.destroy()
    await failsWith(failed, 'truncated', /after 3 of 6 bytes/)
  })
})
