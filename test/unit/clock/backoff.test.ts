import assert from 'node:assert/strict'
import { Backoff } from '../../../src/clock/backoff.js'

describe('Backoff: the one retry pause (doubling, capped, jittered ±50%)', () => {
  it('doubles from first up to max; reset starts over', () => {
    const b = new Backoff(100, 500, () => 0.5)
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 500, 500])
    b.reset()
    assert.equal(b.next(), 100)
  })

  it('each pause is jittered between half and one and a half of its step', () => {
    assert.equal(new Backoff(100, 1000, () => 0).next(), 50)
    assert.equal(new Backoff(100, 1000, () => 0.999).next(), 150)
  })
})
