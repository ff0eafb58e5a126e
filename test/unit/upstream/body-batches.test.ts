import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { bodyBatches } from '../../../src/upstream/body-batches.js'

describe('upstream body-batches: a response body as batches of chunks', () => {
  it('yields every byte in order, chunks that arrived together in one batch', async () => {
    const body = new PassThrough()
    body.write('ab')
    body.write('cd')
    body.end('ef')
    const batches: string[][] = []
    for await (const batch of bodyBatches(body, 1024)) batches.push(batch.map(b => b.toString()))
    assert.equal(batches.flat().join(''), 'abcdef')
    assert.ok(batches.length < 3, 'chunks queued while the consumer was away come as one batch')
  })

  it('above the high-water mark the body is paused until the batch is taken', async () => {
    const body = new PassThrough()
    const batches = bodyBatches(body, 4)
    const first = batches.next()
    body.write(Buffer.alloc(5))
    await first
    body.write(Buffer.alloc(5))
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(body.isPaused(), true)
    const second = await batches.next()
    assert.equal(second.value?.[0]?.byteLength, 5)
    assert.equal(body.isPaused(), false)
    body.end()
    assert.equal((await batches.next()).done, true)
  })

  it('a body error is thrown', async () => {
    const body = new PassThrough()
    const batches = bodyBatches(body, 1024)
    setImmediate(() => body.destroy(new Error('socket hang up')))
    await assert.rejects(async () => {
      for await (const _ of batches) { /* drain */ }
    }, /socket hang up/)
  })

  it('a body that closes before its end is an error, not a short body', async () => {
    const body = new PassThrough()
    body.write('partial')
    setImmediate(() => body.destroy())
    await assert.rejects(async () => {
      for await (const _ of bodyBatches(body, 1024)) { /* drain */ }
    }, /closed before the end/)
  })
})
