import assert from 'node:assert/strict'
import { SingleFlight, type Flight } from '../../../src/resolver/single-flight.js'

/** A flight whose work ends when the test says so, and records its abort. */
function work (): { start: (signal: AbortSignal) => Flight<string>, finish: () => void, aborted: () => boolean, starts: () => number } {
  let finish!: () => void
  let signal: AbortSignal | undefined
  let starts = 0
  return {
    start: s => {
      starts++
      signal = s
      const done = new Promise<void>((resolve, reject) => {
        finish = resolve
        s.addEventListener('abort', () => {
          reject(s.reason as Error)
        })
      })
      done.catch(() => {})
      return { value: 'value', done }
    },
    finish: () => {
      finish()
    },
    aborted: () => signal?.aborted === true,
    starts: () => starts
  }
}

describe('SingleFlight: one piece of work per key, shared by its callers', () => {
  it('concurrent joins share one flight; a join after it is done starts a new one', async () => {
    const flights = new SingleFlight<string, string>()
    const w = work()
    const a = flights.join('k', w.start)
    const b = flights.join('k', w.start)
    assert.equal(w.starts(), 1)
    assert.equal(a.started, true)
    assert.equal(b.started, false)
    w.finish()
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(flights.size, 0)
    flights.join('k', w.start)
    assert.equal(w.starts(), 2)
  })

  it('a caller that leaves stops only its share; the last one to leave aborts the work', () => {
    const flights = new SingleFlight<string, string>()
    const w = work()
    const left = new AbortController()
    flights.join('k', w.start, { signal: left.signal })
    const stays = flights.join('k', w.start)
    left.abort()
    assert.equal(w.aborted(), false, 'another caller still reads it')
    stays.release()
    assert.equal(w.aborted(), true, 'nobody is left')
  })

  it('with a linger period, a caller that comes back in time keeps the work going', async () => {
    const flights = new SingleFlight<string, string>({ lingerMs: 50 })
    const w = work()
    flights.join('k', w.start).release()
    const back = flights.joinExisting('k')
    assert.ok(back !== undefined, 'the flight is still there')
    await new Promise(resolve => setTimeout(resolve, 80))
    assert.equal(w.aborted(), false)
    back.release()
    await new Promise(resolve => setTimeout(resolve, 80))
    assert.equal(w.aborted(), true)
  })

  it('joinExisting never starts work', () => {
    const flights = new SingleFlight<string, string>()
    assert.equal(flights.joinExisting('nothing'), undefined)
    assert.equal(flights.size, 0)
  })

  it('drain gives running work its grace period, then aborts what is left', async () => {
    const flights = new SingleFlight<string, string>()
    const quick = work()
    const stuck = work()
    flights.join('a', quick.start)
    flights.join('b', stuck.start)
    setTimeout(() => {
      quick.finish()
    }, 5)
    await flights.drain(new Error('shutting down'), 50)
    assert.equal(quick.aborted(), false)
    assert.equal(stuck.aborted(), true)
  })
})

describe('SingleFlight: a flight being aborted is not joined', () => {
  it('a caller that comes after the last one left (before the work settled) starts a new flight', async () => {
    const flights = new SingleFlight<string, string>()
    const w = work()
    flights.join('k', w.start).release()
    assert.equal(w.aborted(), true)
    // The aborted work has not settled yet: joining it would hand this caller its abort.
    const again = flights.join('k', w.start)
    assert.equal(again.started, true)
    assert.equal(w.starts(), 2)
    assert.equal(w.aborted(), false, 'the new flight runs')
    assert.equal(flights.joinExisting('k')?.started, false)
    w.finish()
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(flights.size, 0)
  })
})
