import assert from 'node:assert/strict'
import { PassThrough, Readable } from 'node:stream'
import { UPLOAD_BURST_MS, UploadRate } from '../../../../src/p2p/fetch/upload-rate.js'
import { sendBody, type BodySink } from '../../../../src/p2p/fetch/send-body.js'
import { FakeClock } from '../../fakes/clock.js'

/** An UploadRate on a FakeClock whose sleeps move the clock: time is what the cap makes it. */
function capped (bytesPerSecond: number): { rate: UploadRate, clock: FakeClock, slept: number[] } {
  const clock = new FakeClock(0)
  const slept: number[] = []
  const rate = new UploadRate({
    bytesPerSecond,
    clock,
    sleep: async (ms, { signal }) => {
      signal.throwIfAborted()
      slept.push(ms)
      clock.advance(ms)
    }
  })
  return { rate, clock, slept }
}

/** A sink that takes everything at once and records it. */
function memorySink (): BodySink & { bytes: number } {
  const sink = {
    bytes: 0,
    send: (buf: Uint8Array) => {
      sink.bytes += buf.byteLength
      return true
    },
    onDrain: async () => {},
    addEventListener: () => {},
    removeEventListener: () => {}
  }
  return sink
}

describe('UploadRate: the node-wide cap on bytes served to peers (CACHE_P2P_MAX_UPLOAD_RATE)', () => {
  it('a transfer never runs more than the burst ahead of the rate: within 10% over half a second or more', async () => {
    const { rate, clock } = capped(1_000_000)
    const never = new AbortController().signal
    for (let sent = 0; sent < 5_000_000; sent += 64 * 1024) {
      await rate.take(64 * 1024, { signal: never })
      const allowed = 1_000_000 * (clock.now() + UPLOAD_BURST_MS) / 1000
      assert.ok(sent + 64 * 1024 <= allowed + 64 * 1024, `at ${clock.now()} ms, ${sent + 64 * 1024} bytes, allowed ${allowed}`)
    }
    const achieved = 5_000_000 / (clock.now() / 1000)
    assert.ok(achieved <= 1_100_000, `achieved ${achieved} B/s`)
    assert.ok(achieved >= 900_000, `and not far below it: ${achieved} B/s`)
  })

  it('concurrent uploads share the one rate', async () => {
    const { rate, clock } = capped(2_000_000)
    const never = new AbortController().signal
    const upload = async (): Promise<void> => {
      for (let i = 0; i < 30; i++) await rate.take(100_000, { signal: never })
    }
    await Promise.all([upload(), upload(), upload()])
    assert.ok(9_000_000 / (clock.now() / 1000) <= 2_200_000, `3 uploads of 3 MB in ${clock.now()} ms`)
  })

  it('an idle node may send a burst at once; a rate that is not positive is refused', async () => {
    const { rate, slept } = capped(1_000_000)
    await rate.take(40_000, { signal: new AbortController().signal })
    assert.deepEqual(slept, [], '40 ms worth is within the 50 ms burst')
    assert.throws(() => new UploadRate({ bytesPerSecond: 0 }), RangeError)
  })

  it('a wait ends when the peer leaves', async () => {
    const rate = new UploadRate({ bytesPerSecond: 1000 })
    const left = new AbortController()
    const waiting = rate.take(1_000_000, { signal: left.signal })
    left.abort(new Error('the peer closed the transfer'))
    await assert.rejects(waiting, /the peer closed the transfer/)
  })

  it('sendBody passes each chunk through the cap before the sink', async () => {
    const { rate, clock } = capped(1_000_000)
    const sink = memorySink()
    const body = Readable.from(Array.from({ length: 20 }, () => Buffer.alloc(100_000)))
    let counted = 0
    await sendBody(body, sink, 1_000, n => {
      counted += n
    }, rate)
    assert.equal(sink.bytes, 2_000_000)
    assert.equal(counted, 2_000_000)
    assert.ok(clock.now() >= 2_000 - UPLOAD_BURST_MS - 100, `2 MB at 1 MB/s took ${clock.now()} ms`)
  })

  it('sendBody without a cap sends as fast as the sink takes', async () => {
    const sink = memorySink()
    const body = new PassThrough()
    body.end(Buffer.alloc(1_000_000))
    await sendBody(body, sink, 1_000, () => {})
    assert.equal(sink.bytes, 1_000_000)
  })
})
