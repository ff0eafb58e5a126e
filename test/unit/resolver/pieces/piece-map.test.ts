import assert from 'node:assert/strict'
import { PIECE_SIZE } from '../../../../src/p2p/constants.js'
import { PieceMap } from '../../../../src/resolver/pieces/piece-map.js'

const H = (n: number): string => n.toString(16).padStart(64, '0')

/** Which pieces are done, as a list of indexes. */
function doneList (map: PieceMap): number[] {
  const out: number[] = []
  for (let i = 0; i < map.count; i++) if (map.isDone(i)) out.push(i)
  return out
}

/** Settles within a few turns of the event loop: 'pending' if it has not. */
async function state<T> (p: Promise<T>): Promise<{ value: T } | { error: unknown } | 'pending'> {
  let out: { value: T } | { error: unknown } | 'pending' = 'pending'
  p.then(value => {
    out = { value }
  }, (error: unknown) => {
    out = { error }
  })
  for (let i = 0; i < 5; i++) {
    await new Promise<void>(resolve => {
      setImmediate(resolve)
    })
  }
  return out
}

describe("PieceMap: a receiver's view of a blob cut into pieces (issue 23)", () => {
  describe('geometry', () => {
    it('count, start, end and length, the short last piece included', () => {
      const map = new PieceMap(10, 4)
      assert.equal(map.count, 3)
      assert.deepEqual([0, 1, 2].map(i => [map.start(i), map.end(i), map.length(i)]), [[0, 4, 4], [4, 8, 4], [8, 10, 2]])
      assert.equal(map.size, 10)
      assert.equal(map.pieceSize, 4)
    })

    it('a size that is an exact multiple of the piece size has no extra piece', () => {
      const map = new PieceMap(12, 4)
      assert.equal(map.count, 3)
      assert.equal(map.end(2), 12)
      assert.equal(map.length(2), 4)
    })

    it('a blob smaller than a piece is one short piece', () => {
      const map = new PieceMap(3, 4)
      assert.equal(map.count, 1)
      assert.equal(map.length(0), 3)
    })

    it('the piece size defaults to PIECE_SIZE', () => {
      const map = new PieceMap(2.5 * PIECE_SIZE)
      assert.equal(map.pieceSize, PIECE_SIZE)
      assert.equal(map.count, 3)
      assert.equal(map.length(2), PIECE_SIZE / 2)
    })

    it('a size of zero, a negative or a fractional size is a RangeError', () => {
      assert.throws(() => new PieceMap(0, 4), RangeError)
      assert.throws(() => new PieceMap(-1, 4), RangeError)
      assert.throws(() => new PieceMap(1.5, 4), RangeError)
    })
  })

  describe('what is already in the file', () => {
    it('nothing: every piece is missing', () => {
      const map = new PieceMap(10, 4)
      assert.equal(map.doneCount, 0)
      assert.equal(map.done, false)
      assert.equal(map.nextMissing(), 0)
    })

    it('pieces wholly inside the prefix are done; one the prefix covers only in part is missing', () => {
      const map = new PieceMap(20, 4, 10)
      assert.deepEqual(doneList(map), [0, 1])
      assert.equal(map.doneCount, 2)
      assert.equal(map.nextMissing(), 2, 'piece 2 (bytes 8..12) is fetched again: its hash covers the whole piece')
    })

    it('a prefix on a piece boundary marks exactly the pieces before it', () => {
      const map = new PieceMap(20, 4, 12)
      assert.deepEqual(doneList(map), [0, 1, 2])
      assert.equal(map.nextMissing(), 3)
    })

    it('a prefix as long as the blob marks every piece, the short last one too', () => {
      const map = new PieceMap(10, 4, 10)
      assert.equal(map.done, true)
      assert.equal(map.doneCount, 3)
      assert.equal(map.nextMissing(), -1)
      const exact = new PieceMap(12, 4, 12)
      assert.equal(exact.done, true)
      assert.equal(exact.doneCount, 3)
    })

    it('a prefix inside the short last piece leaves it missing', () => {
      const map = new PieceMap(10, 4, 9)
      assert.deepEqual(doneList(map), [0, 1])
      assert.equal(map.done, false)
    })

    it('done offsets mark pieces ahead of the prefix; offsets not on a piece start or past the end are ignored', () => {
      const map = new PieceMap(20, 4, 4, [12, 16, 6, 20, 400])
      assert.deepEqual(doneList(map), [0, 3, 4])
      assert.equal(map.doneCount, 3)
      assert.equal(map.nextMissing(), 1)
      assert.equal(map.nextMissing(2), 2)
      assert.equal(map.nextMissing(3), -1)
    })

    it('a done offset inside the prefix is not counted twice', () => {
      const map = new PieceMap(12, 4, 8, [0, 4, 8])
      assert.equal(map.doneCount, 3)
      assert.equal(map.done, true)
    })
  })

  describe('missing, assigned and done', () => {
    it('nextMissing skips assigned and done pieces; -1 when none is left', () => {
      const map = new PieceMap(24, 4)
      map.assign(0, 2)
      map.complete(2)
      assert.equal(map.nextMissing(), 3)
      assert.equal(map.nextMissing(4), 4)
      assert.equal(map.nextMissing(-5), 3)
      map.assign(3, 10)
      assert.equal(map.nextMissing(), -1)
    })

    it('assign takes up to max missing pieces and returns one past the last', () => {
      const map = new PieceMap(40, 4)
      assert.equal(map.assign(0, 3), 3)
      assert.equal(map.nextMissing(), 3)
      assert.equal(map.assign(3, 100), 10, 'never past the last piece')
      assert.equal(map.nextMissing(), -1)
    })

    it('assign stops at the first piece that is not missing', () => {
      const map = new PieceMap(40, 4)
      map.complete(4)
      map.assign(6, 1)
      assert.equal(map.assign(2, 10), 4, 'stops at the done piece 4')
      assert.equal(map.assign(5, 10), 6, 'stops at the assigned piece 6')
      assert.equal(map.assign(4, 10), 4, 'nothing from a done piece')
      assert.equal(map.nextMissing(), 0, 'pieces 0 and 1 were never asked for')
      assert.equal(map.nextMissing(2), 7, '2, 3, 5 and 6 assigned, 4 done')
    })

    it('unassign makes assigned pieces that are not done missing again, and leaves others as they are', () => {
      const map = new PieceMap(24, 4)
      map.assign(0, 4)
      map.complete(0)
      map.complete(1)
      map.complete(5)
      map.unassign(0, 100)
      assert.deepEqual(doneList(map), [0, 1, 5])
      assert.equal(map.nextMissing(), 2)
      assert.equal(map.nextMissing(3), 3)
      assert.equal(map.nextMissing(4), 4, 'piece 4 was missing and stays missing')
      assert.equal(map.assign(2, 10), 5)
    })

    it('unassign of a range leaves the assigned pieces outside it assigned', () => {
      const map = new PieceMap(24, 4)
      map.assign(0, 6)
      map.unassign(2, 4)
      assert.equal(map.nextMissing(), 2)
      assert.equal(map.nextMissing(4), -1)
    })

    it('complete marks a piece done once; done is true when every piece is', () => {
      const map = new PieceMap(10, 4)
      map.assign(0, 3)
      map.complete(1)
      map.complete(1)
      assert.equal(map.doneCount, 1)
      assert.equal(map.isDone(1), true)
      assert.equal(map.isDone(0), false)
      map.complete(0)
      assert.equal(map.done, false)
      map.complete(2)
      assert.equal(map.done, true)
      assert.equal(map.doneCount, 3)
    })
  })

  describe('piece hashes from the hash source', () => {
    it('addHashes appends in order and skips the ones already known', () => {
      const map = new PieceMap(20, 4)
      assert.equal(map.hashesKnown, 0)
      map.addHashes(0, [H(0), H(1)])
      assert.equal(map.hashesKnown, 2)
      map.addHashes(1, [H(1), H(2), H(3)])
      assert.equal(map.hashesKnown, 4)
      map.addHashes(0, [H(0)])
      assert.equal(map.hashesKnown, 4)
      map.addHashes(4, [H(4)])
      assert.equal(map.hashesKnown, 5)
    })

    it('addHashes with a gap after the known ones is a RangeError, and adds nothing', () => {
      const map = new PieceMap(20, 4)
      map.addHashes(0, [H(0)])
      assert.throws(() => {
        map.addHashes(2, [H(2)])
      }, RangeError)
      assert.equal(map.hashesKnown, 1)
    })

    it('more hashes than pieces is a RangeError, and adds nothing', () => {
      const map = new PieceMap(10, 4)
      assert.throws(() => {
        map.addHashes(0, [H(0), H(1), H(2), H(3)])
      }, RangeError)
      assert.equal(map.hashesKnown, 0)
      map.addHashes(0, [H(0), H(1)])
      assert.throws(() => {
        map.addHashes(1, [H(1), H(2), H(3)])
      }, RangeError)
      assert.equal(map.hashesKnown, 2)
    })

    it('hash(i) of a known hash resolves at once', async () => {
      const map = new PieceMap(10, 4)
      map.addHashes(0, [H(0), H(1), H(2)])
      assert.equal(await map.hash(2, { signal: new AbortController().signal }), H(2))
    })

    it('hash(i) waits for the hash and resolves when it is added later', async () => {
      const map = new PieceMap(20, 4)
      const waiting = map.hash(2, { signal: new AbortController().signal })
      assert.equal(await state(waiting), 'pending')
      map.addHashes(0, [H(0), H(1)])
      assert.equal(await state(waiting), 'pending', 'hashes before piece 2 are not enough')
      map.addHashes(2, [H(2)])
      assert.deepEqual(await state(waiting), { value: H(2) })
    })

    it('several waiters for different pieces each resolve with their own hash', async () => {
      const map = new PieceMap(20, 4)
      const signal = new AbortController().signal
      const waiting = [map.hash(0, { signal }), map.hash(3, { signal }), map.hash(0, { signal })]
      map.addHashes(0, [H(0), H(1), H(2), H(3)])
      assert.deepEqual(await Promise.all(waiting), [H(0), H(3), H(0)])
    })

    it('hash(i) rejects with the error failHashes gives, now and for later calls', async () => {
      const map = new PieceMap(20, 4)
      const waiting = map.hash(1, { signal: new AbortController().signal })
      const failure = new Error('hash source gone')
      map.failHashes(failure)
      await assert.rejects(waiting, (err: unknown) => err === failure)
      await assert.rejects(map.hash(4, { signal: new AbortController().signal }), (err: unknown) => err === failure)
    })

    it('hashes known before failHashes still resolve', async () => {
      const map = new PieceMap(20, 4)
      map.addHashes(0, [H(0)])
      map.failHashes(new Error('hash source gone'))
      assert.equal(await map.hash(0, { signal: new AbortController().signal }), H(0))
    })

    it('hash(i) rejects when its signal aborts, waiting or already aborted', async () => {
      const map = new PieceMap(20, 4)
      const ac = new AbortController()
      const waiting = map.hash(1, { signal: ac.signal })
      assert.equal(await state(waiting), 'pending')
      ac.abort(new Error('transfer ended'))
      await assert.rejects(waiting, /transfer ended/)
      await assert.rejects(map.hash(1, { signal: AbortSignal.abort() }), (err: Error) => err.name === 'AbortError')
    })

    it('an aborted waiter does not keep others from their hash', async () => {
      const map = new PieceMap(20, 4)
      const ac = new AbortController()
      const aborted = map.hash(1, { signal: ac.signal })
      const other = map.hash(1, { signal: new AbortController().signal })
      ac.abort()
      await assert.rejects(aborted)
      map.addHashes(0, [H(0), H(1)])
      assert.equal(await other, H(1))
    })

    it("hashWanted: the follower's pause ends after its time, at once when a piece waits for a hash, or when one starts waiting", async () => {
      const map = new PieceMap(4 * 1024, 1024)
      const signal = new AbortController().signal
      const t0 = performance.now()
      await map.hashWanted(30, { signal })
      assert.ok(performance.now() - t0 >= 25, 'nobody waits: the whole pause')
      let resolved = false
      const pause = map.hashWanted(60_000, { signal }).then(() => {
        resolved = true
      })
      await new Promise(resolve => setImmediate(resolve))
      assert.equal(resolved, false)
      const waiting = map.hash(0, { signal })
      await pause
      assert.equal(resolved, true, "a transfer waiting for piece 0's hash ends the pause")
      await map.hashWanted(60_000, { signal })
      map.addHashes(0, [H(0)])
      assert.equal(await waiting, H(0))
      const aborted = new AbortController()
      const long = map.hashWanted(60_000, { signal: aborted.signal })
      aborted.abort()
      await long
    })
  })
})
