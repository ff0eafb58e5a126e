import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { PIECE_SIZE } from '../../../../src/p2p/constants.js'
import { hashPieces, pieceCount, pieceHash, PieceHasher } from '../../../../src/p2p/pieces/piece-hasher.js'

/** The sha256 (hex) of each `pieceSize` slice of `body`, the last one possibly shorter. */
function expectedHashes (body: Uint8Array, pieceSize: number): string[] {
  const out: string[] = []
  for (let at = 0; at < body.byteLength; at += pieceSize) {
    out.push(createHash('sha256').update(body.subarray(at, at + pieceSize)).digest('hex'))
  }
  return out
}

/** Every hash the hasher has, one by one (hex(i, 1) is one hash of 64 characters). */
function hashesOf (hasher: PieceHasher): string[] {
  const out: string[] = []
  for (let i = 0; i < hasher.count; i++) out.push(hasher.hex(i, 1))
  return out
}

/** `body` cut at the given lengths, cycling through them. */
function cut (body: Uint8Array, lengths: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = []
  let k = 0
  for (let at = 0; at < body.byteLength;) {
    const n = lengths[k++ % lengths.length] as number
    chunks.push(body.subarray(at, at + n))
    at += n
  }
  return chunks
}

async function* chunksOf (chunks: Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const c of chunks) {
    await Promise.resolve()
    yield c
  }
}

describe('piece hashes: the sha256 of each piece of a blob (fetch/1.2.0, issue 23)', () => {
  it('pieceHash is the sha256 hex of the chunks put together', () => {
    const body = Buffer.from('hello, pieces')
    const expected = createHash('sha256').update(body).digest('hex')
    assert.equal(pieceHash([body]), expected)
    assert.equal(pieceHash([body.subarray(0, 3), body.subarray(3, 3), body.subarray(3)]), expected)
    assert.match(pieceHash([]), /^[0-9a-f]{64}$/)
    assert.equal(pieceHash([]), createHash('sha256').digest('hex'))
  })

  it('pieceCount counts the short last piece, and no extra piece for an exact multiple', () => {
    assert.equal(pieceCount(1, 4), 1)
    assert.equal(pieceCount(4, 4), 1)
    assert.equal(pieceCount(5, 4), 2)
    assert.equal(pieceCount(8, 4), 2)
    assert.equal(pieceCount(9, 4), 3)
    assert.equal(pieceCount(PIECE_SIZE), 1)
    assert.equal(pieceCount(PIECE_SIZE + 1), 2)
    assert.equal(pieceCount(2.5 * 1024 * 1024), 3)
  })

  it('hashes each pieceSize slice as createHash(sha256) does, the short last one at finish', () => {
    const body = randomBytes(4 * 7 + 3)
    const hasher = new PieceHasher(4)
    hasher.update(body)
    assert.equal(hasher.count, 7, 'the whole pieces are hashed as their last byte comes in')
    assert.equal(hasher.finished, false)
    hasher.finish()
    assert.equal(hasher.finished, true)
    assert.equal(hasher.count, 8)
    assert.deepEqual(hashesOf(hasher), expectedHashes(body, 4))
  })

  it('chunks whose boundaries straddle pieces give the same hashes as one big update', () => {
    const body = randomBytes(1024 * 5 + 300)
    const whole = new PieceHasher(1024)
    whole.update(body)
    whole.finish()
    for (const lengths of [[1], [3, 1021, 2000], [1023], [1025], [700, 1, 5000], [body.byteLength]]) {
      const hasher = new PieceHasher(1024)
      for (const c of cut(body, lengths)) hasher.update(c)
      hasher.finish()
      assert.deepEqual(hashesOf(hasher), hashesOf(whole), `chunks of ${lengths.join(', ')}`)
    }
    assert.deepEqual(hashesOf(whole), expectedHashes(body, 1024))
  })

  it('an empty chunk changes nothing', () => {
    const hasher = new PieceHasher(4)
    hasher.update(new Uint8Array(0))
    hasher.update(Buffer.from('abcd'))
    hasher.update(new Uint8Array(0))
    hasher.finish()
    assert.deepEqual(hashesOf(hasher), expectedHashes(Buffer.from('abcd'), 4))
  })

  it('finish is idempotent: a second finish adds no piece and changes no hash', () => {
    const body = randomBytes(10)
    const hasher = new PieceHasher(4)
    hasher.update(body)
    hasher.finish()
    const first = hasher.hex(0, Infinity)
    hasher.finish()
    assert.equal(hasher.count, 3)
    assert.equal(hasher.hex(0, Infinity), first)
    assert.deepEqual(hashesOf(hasher), expectedHashes(body, 4))
  })

  it('a blob that is an exact multiple of the piece size gets no extra empty piece', () => {
    const body = randomBytes(4 * 3)
    const hasher = new PieceHasher(4)
    hasher.update(body)
    assert.equal(hasher.count, 3)
    hasher.finish()
    assert.equal(hasher.count, 3)
    assert.deepEqual(hashesOf(hasher), expectedHashes(body, 4))
    assert.ok(!hashesOf(hasher).includes(createHash('sha256').digest('hex')), 'no hash of an empty piece')
  })

  it('update after finish throws', () => {
    const hasher = new PieceHasher(4)
    hasher.update(Buffer.from('abc'))
    hasher.finish()
    assert.throws(() => {
      hasher.update(Buffer.from('d'))
    }, /after finish/)
    assert.equal(hasher.count, 1)
  })

  it('hex(from, max) concatenates up to max hashes from piece from on', () => {
    const body = randomBytes(4 * 5)
    const hasher = new PieceHasher(4)
    hasher.update(body)
    hasher.finish()
    const expected = expectedHashes(body, 4)
    assert.equal(hasher.hex(0, 5), expected.join(''))
    assert.equal(hasher.hex(1, 2), (expected[1] as string) + (expected[2] as string))
    assert.equal(hasher.hex(3, 100), expected.slice(3).join(''), 'past the end: only the hashes there are')
    assert.equal(hasher.hex(2, 0), '')
    assert.equal(hasher.hex(5, 3), '', 'from past the last piece: none')
    assert.equal(hasher.hex(1, 2).length, 128, '64 hex characters each')
  })

  it('hex gives only the pieces hashed so far while bytes still arrive', () => {
    const body = randomBytes(4 * 3)
    const hasher = new PieceHasher(4)
    hasher.update(body.subarray(0, 6))
    assert.equal(hasher.count, 1)
    assert.equal(hasher.hex(0, 10), expectedHashes(body, 4)[0])
    hasher.update(body.subarray(6))
    assert.equal(hasher.hex(0, 10), expectedHashes(body, 4).join(''))
  })

  it('with the real PIECE_SIZE, a ~2.5 MiB blob has 2 whole pieces and a short third', () => {
    const body = randomBytes(2.5 * 1024 * 1024)
    const hasher = new PieceHasher()
    assert.equal(hasher.pieceSize, PIECE_SIZE)
    for (const c of cut(body, [64 * 1024, 100_000, 333_333])) hasher.update(c)
    assert.equal(hasher.count, 2)
    hasher.finish()
    assert.equal(hasher.count, 3)
    assert.equal(hasher.count, pieceCount(body.byteLength))
    assert.deepEqual(hashesOf(hasher), expectedHashes(body, PIECE_SIZE))
  })

  it('hashPieces hashes an async iterable of chunks and finishes', async () => {
    const body = randomBytes(1024 * 3 + 17)
    const hasher = await hashPieces(chunksOf(cut(body, [500, 1500, 7])), 1024)
    assert.equal(hasher.finished, true)
    assert.equal(hasher.count, 4)
    assert.deepEqual(hashesOf(hasher), expectedHashes(body, 1024))
  })

  it('hashPieces of an empty stream has no pieces', async () => {
    const hasher = await hashPieces(chunksOf([]), 1024)
    assert.equal(hasher.finished, true)
    assert.equal(hasher.count, 0)
    assert.equal(hasher.hex(0, 10), '')
  })

  it("hashPieces passes on the stream's error", async () => {
    async function* failing (): AsyncIterable<Uint8Array> {
      yield Buffer.from('abcd')
      throw new Error('disk read failed')
    }
    await assert.rejects(hashPieces(failing(), 4), /disk read failed/)
  })
})

describe('PieceHasher.known: a piece checked on receipt is not hashed again', () => {
  it('takes the known hash at a piece boundary, as if it had hashed the bytes', () => {
    const body = Buffer.from('abcdefghij')
    const byBytes = new PieceHasher(4)
    byBytes.update(body)
    byBytes.finish()
    const known = new PieceHasher(4)
    known.update(body.subarray(0, 4))
    assert.ok(known.aligned)
    known.known(byBytes.hex(1, 1), 4)
    known.update(body.subarray(8))
    known.finish()
    assert.equal(known.hex(0, 10), byBytes.hex(0, 10))
  })

  it('a short known piece ends the blob; off a boundary it throws', () => {
    const h = new PieceHasher(4)
    h.known('a'.repeat(64), 2)
    assert.equal(h.finished, true)
    assert.equal(h.aligned, false)
    const off = new PieceHasher(4)
    off.update(Buffer.from('ab'))
    assert.equal(off.aligned, false)
    assert.throws(() => {
      off.known('b'.repeat(64), 4)
    }, /boundary/)
  })
})
