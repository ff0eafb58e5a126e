import assert from 'node:assert/strict'
import { z } from 'zod'
import { decodeJsonFrame, encodeJsonFrame, FrameError, MAX_FRAME_ERROR_CHARS } from '../../../src/p2p/json-frame.js'

const schema = z.strictObject({ n: z.number().int(), s: z.string().max(10) })
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('json-frame: one JSON object per protocol frame', () => {
  it('encodes a value as UTF-8 JSON and decodes it back through the schema', () => {
    const frame = encodeJsonFrame({ n: 3, s: 'héllo' })
    assert.equal(Buffer.from(frame).toString('utf8'), '{"n":3,"s":"héllo"}')
    assert.deepEqual(decodeJsonFrame(frame, schema, 'test frame'), { n: 3, s: 'héllo' })
  })

  it('refuses bytes that are not UTF-8, and text that is not JSON, naming the frame', () => {
    for (const bad of [new Uint8Array([0x7b, 0xff, 0x7d]), bytes('{"n":1'), bytes(''), bytes('undefined')]) {
      assert.throws(
        () => decodeJsonFrame(bad, schema, 'test frame'),
        (err: unknown) => err instanceof FrameError && err.name === 'FrameError' && err.message === 'test frame is not UTF-8 JSON'
      )
    }
  })

  it('refuses JSON of the wrong shape with what zod found wrong', () => {
    assert.throws(
      () => decodeJsonFrame(bytes('{"n":1.5,"s":"x"}'), schema, 'test frame'),
      (err: unknown) => err instanceof FrameError && err.message.startsWith('bad test frame: ') && /int/i.test(err.message)
    )
    assert.throws(() => decodeJsonFrame(bytes('[1,2]'), schema, 'test frame'), FrameError)
    assert.throws(() => decodeJsonFrame(bytes('null'), schema, 'test frame'), FrameError)
  })

  it('cuts the message of a frame whose errors echo long peer input (an unknown key) to MAX_FRAME_ERROR_CHARS', () => {
    const keys = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`${'k'.repeat(200)}${i}`, 1]))
    const frame = encodeJsonFrame({ n: 1, s: 'x', ...keys })
    assert.throws(() => decodeJsonFrame(frame, schema, 'test frame'), (err: unknown) => {
      assert.ok(err instanceof FrameError)
      assert.equal(err.message.length, MAX_FRAME_ERROR_CHARS)
      assert.ok(err.message.startsWith('bad test frame: '), err.message.slice(0, 40))
      assert.ok(err.message.endsWith('...'), 'marked as cut')
      return true
    })
  })
})
