import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { readableSource } from '../../../src/io/byte-source.js'

/** What a listener was told, in order. */
function listener (): {
  events: string[]
  errors: Array<Error | undefined>
  handlers: { data: (b: Buffer) => void, end: (err?: Error) => void }
} {
  const events: string[] = []
  const errors: Array<Error | undefined> = []
  return {
    events,
    errors,
    handlers: {
      data: b => {
        events.push(`data:${b.toString()}`)
      },
      end: err => {
        events.push('end')
        errors.push(err)
      }
    }
  }
}

async function turn (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

describe('readableSource: a Node Readable as a ByteSource', () => {
  it('delivers the chunks in order, then a clean end', async () => {
    const stream = new PassThrough()
    const source = readableSource(stream)
    const l = listener()
    source.listen(l.handlers)
    stream.write('a')
    stream.write('b')
    stream.end('c')
    await new Promise(resolve => stream.once('close', resolve))
    assert.deepEqual(l.events.slice(0, 4), ['data:a', 'data:b', 'data:c', 'end'])
    assert.equal(l.errors[0], undefined, 'a clean end carries no error')
    assert.equal(l.events.filter(e => e === 'end').length, 1, 'the close after the end is not a second end')
    assert.equal(source.ended, true)
  })

  it('a close without an end (a reset, a destroyed body) ends it with an error', async () => {
    const stream = new PassThrough()
    const source = readableSource(stream)
    const l = listener()
    source.listen(l.handlers)
    stream.write('partial')
    await turn()
    assert.equal(source.ended, false)
    stream.destroy()
    await new Promise(resolve => stream.once('close', resolve))
    assert.deepEqual(l.events, ['data:partial', 'end'])
    assert.match(l.errors[0]?.message ?? '', /closed before the end/)
    assert.equal(source.ended, true)
  })

  it('a stream error ends it with that error first', async () => {
    const stream = new PassThrough()
    const source = readableSource(stream)
    const l = listener()
    source.listen(l.handlers)
    stream.destroy(new Error('ECONNRESET'))
    await new Promise(resolve => stream.once('close', resolve))
    assert.equal(l.errors[0]?.message, 'ECONNRESET')
    assert.ok(l.errors.every(e => e instanceof Error), 'no end of a failed stream looks clean')
  })

  it('pause holds the stream only while still wanted; resume lets it flow again', async () => {
    const stream = new PassThrough()
    const source = readableSource(stream)
    const l = listener()
    source.listen(l.handlers)
    source.pause(() => false)
    assert.equal(stream.isPaused(), false, 'no longer wanted: not paused')
    source.pause(() => true)
    assert.equal(stream.isPaused(), true)
    stream.write('held')
    await turn()
    assert.deepEqual(l.events, [], 'nothing is delivered while paused')
    source.resume()
    await turn()
    assert.deepEqual(l.events, ['data:held'])
    stream.destroy()
    await new Promise(resolve => stream.once('close', resolve))
  })

  it('after unlisten, nothing reaches the old listener', async () => {
    const stream = new PassThrough()
    const source = readableSource(stream)
    const l = listener()
    source.listen(l.handlers)
    source.unlisten()
    stream.resume()
    stream.end('late')
    await new Promise(resolve => stream.once('close', resolve))
    assert.deepEqual(l.events, [])
    assert.equal(stream.listenerCount('data'), 0)
  })
})
