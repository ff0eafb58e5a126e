import assert from 'node:assert/strict'
import { PassThrough, type Readable } from 'node:stream'
import { SharedBody } from '../../../src/apicache/shared-body.js'

async function readAll (stream: Readable): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString()
}

/** A paused source, as ApiClient hands an oversize body over. */
function source (): PassThrough {
  const s = new PassThrough()
  s.pause()
  return s
}

const tick = async (): Promise<void> => {
  await new Promise(resolve => setImmediate(resolve))
}

describe('apicache shared-body: one upstream body streamed to every caller that shared its request', () => {
  it('each of the sharers reads the whole body, from its first byte', async () => {
    const src = source()
    src.write('first ')
    const shared = new SharedBody(src)
    const readers = [shared.reader(3), shared.reader(3), shared.reader(3)]
    const texts = Promise.all(readers.map(readAll))
    src.end('and the rest')
    assert.deepEqual(await texts, ['first and the rest', 'first and the rest', 'first and the rest'])
  })

  it('the body flows only once every sharer took its reader: none misses the first bytes', async () => {
    const src = source()
    src.write('head ')
    const shared = new SharedBody(src)
    const early = shared.reader(2)
    let seen = ''
    early.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
    })
    await tick()
    assert.equal(seen, '', 'nothing flows while a sharer is still to take its reader')
    const late = shared.reader(2)
    const lateText = readAll(late)
    src.end('tail')
    assert.equal(await lateText, 'head tail')
    assert.equal(seen, 'head tail')
  })

  it('a reader that is destroyed (its client left) drops out; the others read on', async () => {
    const src = source()
    const shared = new SharedBody(src)
    const leaves = shared.reader(2)
    const stays = shared.reader(2)
    const text = readAll(stays)
    leaves.destroy()
    src.write('a')
    await tick()
    src.end('b')
    assert.equal(await text, 'ab')
    assert.equal(src.readableEnded, true, 'read to its end, not destroyed')
  })

  it('when every reader is gone the upstream body is destroyed', async () => {
    const src = source()
    const shared = new SharedBody(src)
    const a = shared.reader(2)
    const b = shared.reader(2)
    src.write('partial')
    a.destroy()
    b.destroy()
    await tick()
    assert.equal(src.destroyed, true)
  })

  it('a reader destroyed before the body flows does not hold the others back', async () => {
    const src = source()
    const shared = new SharedBody(src)
    shared.reader(2).destroy()
    const stays = shared.reader(2)
    src.end('all of it')
    assert.equal(await readAll(stays), 'all of it')
  })

  it('the slowest reader paces the body (backpressure): it goes on once that reader drained', async () => {
    const src = source()
    const shared = new SharedBody(src)
    const slow = shared.reader(2)
    const fast = shared.reader(2)
    const fastText = readAll(fast)
    src.write(Buffer.alloc(64 * 1024, 'x'))
    await tick()
    assert.equal(src.readableFlowing, false, 'paused while the slow reader is full')
    src.end()
    const [slowText, fastDone] = await Promise.all([readAll(slow), fastText])
    assert.equal(slowText.length, 64 * 1024)
    assert.equal(fastDone.length, 64 * 1024)
  })

  it('an error of the upstream body fails every reader with it', async () => {
    const src = source()
    const shared = new SharedBody(src)
    const readers = [shared.reader(2), shared.reader(2)]
    src.destroy(new Error('connection reset'))
    await Promise.all(readers.map(async reader => {
      await assert.rejects(readAll(reader), /connection reset/)
    }))
  })

  it('a reader asked for once the body flows fails instead of missing bytes', async () => {
    const src = source()
    const shared = new SharedBody(src)
    const only = shared.reader(1)
    const text = readAll(only)
    await assert.rejects(readAll(shared.reader(1)), /already being read/)
    src.end('x')
    assert.equal(await text, 'x')
  })
})
