import assert from 'node:assert/strict'
import { FrameError, MAX_FRAME_ERROR_CHARS } from '../../../src/p2p/json-frame.js'

/** Asserts `fn` throws a FrameError whose message matches `why` and stays bounded (MAX_FRAME_ERROR_CHARS). */
export function refused (fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FrameError, `a FrameError, got ${String(err)}`)
    assert.match(err.message, why)
    assert.ok(err.message.length <= MAX_FRAME_ERROR_CHARS, `message of ${err.message.length} chars`)
    return true
  })
}
