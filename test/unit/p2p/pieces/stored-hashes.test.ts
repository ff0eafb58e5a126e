import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import type { ReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { sha256Digest, type Digest } from '../../../../src/oci/digest.js'
import { PIECE_SIZE } from '../../../../src/p2p/constants.js'
import { StoredPieceHashes } from '../../../../src/p2p/pieces/stored-hashes.js'
import type { BlobHandle } from '../../../../src/store/blob-store.js'
import { openTestStore, type TestStore } from '../../fakes/store.js'

/** The sha256 (hex) of each PIECE_SIZE slice of `body`, concatenated. */
function expectedHex (body: Uint8Array): string {
  let out = ''
  for (let at = 0; at < body.byteLength; at += PIECE_SIZE) {
    out += createHash('sha256').update(body.subarray(at, at + PIECE_SIZE)).digest('hex')
  }
  return out
}

/** `handle`, with its stream() calls counted. */
function counted (handle: BlobHandle): { handle: BlobHandle, streams: () => number } {
  let n = 0
  return {
    handle: {
      ...handle,
      stream: (start?: number, end?: number) => {
        n++
        return handle.stream(start, end)
      }
    },
    streams: () => n
  }
}

/** A handle of `digest` that reads `body` from memory (or fails), without a store. */
function memoryHandle (digest: Digest, body: Uint8Array | Error): { handle: BlobHandle, streams: () => number } {
  let n = 0
  const handle = {
    digest,
    stream: () => {
      n++
      if (body instanceof Error) {
        return Readable.from((async function* () {
          yield Buffer.from('ab')
          throw body
        })()) as unknown as ReadStream
      }
      return Readable.from([Buffer.from(body)]) as unknown as ReadStream
    },
    read: async () => {
      throw new Error('not used')
    },
    release: async () => {}
  } as unknown as BlobHandle
  return { handle, streams: () => n }
}

describe('StoredPieceHashes: piece hashes of stored blobs, read once and kept', () => {
  let t: TestStore
  const handles: BlobHandle[] = []

  beforeEach(async () => {
    t = await openTestStore({ policy: { maxSize: 20_000_000 } })
  })
  afterEach(async () => {
    for (const h of handles.splice(0)) await h.release()
    await t.dispose()
  })

  /** Commits `body` into the store and opens it for reading. */
  async function storeBlob (body: Buffer): Promise<BlobHandle> {
    const digest = sha256Digest(body)
    await t.store.put(digest, body, 'test')
    const h = await t.store.openRead(digest)
    assert.ok(h !== undefined)
    handles.push(h)
    return h
  }

  it('of(digest, open) gives the PIECE_SIZE piece hashes of the stored file, the short last one included', async () => {
    const body = randomBytes(2.5 * 1024 * 1024)
    const h = await storeBlob(body)
    const hasher = await new StoredPieceHashes().of(h.digest, async () => h)
    assert.equal(hasher.finished, true)
    assert.equal(hasher.count, 3)
    assert.equal(hasher.pieceSize, PIECE_SIZE)
    assert.equal(hasher.hex(0, 3), expectedHex(body))
  })

  it('a blob smaller than one piece has one hash, the sha256 of the whole blob', async () => {
    const body = randomBytes(1000)
    const h = await storeBlob(body)
    const hasher = await new StoredPieceHashes().of(h.digest, async () => h)
    assert.equal(hasher.count, 1)
    assert.equal(`sha256:${hasher.hex(0, 1)}`, h.digest)
  })

  it('concurrent calls for one digest read the file once and share the one answer', async () => {
    const body = randomBytes(PIECE_SIZE + 10)
    const h = await storeBlob(body)
    const c = counted(h)
    const hashes = new StoredPieceHashes()
    const answers = await Promise.all([
      hashes.of(c.handle.digest, async () => c.handle),
      hashes.of(c.handle.digest, async () => c.handle),
      hashes.of(c.handle.digest, async () => c.handle)
    ])
    assert.equal(c.streams(), 1)
    assert.equal(answers[0], answers[1])
    assert.equal(answers[1], answers[2])
    assert.equal(answers[0]?.hex(0, 2), expectedHex(body))
  })

  it('a later call for the same digest, even through another handle, is answered from memory', async () => {
    const body = randomBytes(3000)
    const h = await storeBlob(body)
    const first = counted(h)
    const hashes = new StoredPieceHashes()
    const hasher = await hashes.of(first.handle.digest, async () => first.handle)
    const again = await t.store.openRead(h.digest)
    assert.ok(again !== undefined)
    handles.push(again)
    const second = counted(again)
    assert.equal(await hashes.of(second.handle.digest, async () => second.handle), hasher)
    assert.equal(first.streams(), 1)
    assert.equal(second.streams(), 0)
  })

  it('different digests are hashed separately', async () => {
    const one = randomBytes(2000)
    const two = randomBytes(PIECE_SIZE * 2)
    const hashes = new StoredPieceHashes()
    const [h1, h2] = [await storeBlob(one), await storeBlob(two)]
    const [a, b] = await Promise.all([hashes.of(h1.digest, async () => h1), hashes.of(h2.digest, async () => h2)])
    assert.equal(a.hex(0, 10), expectedHex(one))
    assert.equal(b.count, 2, 'an exact multiple of PIECE_SIZE: no extra piece')
    assert.equal(b.hex(0, 10), expectedHex(two))
  })

  it('a failed read is not kept: the next call reads the file again', async () => {
    const digest = sha256Digest(Buffer.from('x'))
    const hashes = new StoredPieceHashes()
    const broken = memoryHandle(digest, new Error('EIO: read failed'))
    await assert.rejects(hashes.of(broken.handle.digest, async () => broken.handle), /EIO/)
    const good = memoryHandle(digest, Buffer.from('x'))
    const hasher = await hashes.of(good.handle.digest, async () => good.handle)
    assert.equal(good.streams(), 1)
    assert.equal(`sha256:${hasher.hex(0, 1)}`, digest)
  })

  it('a blob no longer stored when its hashes are wanted is an error, not kept', async () => {
    const hashes = new StoredPieceHashes()
    const digest = sha256Digest(Buffer.from('gone'))
    await assert.rejects(hashes.of(digest, async () => undefined), /no longer stored/)
    const { handle } = memoryHandle(digest, Buffer.from('gone'))
    assert.equal((await hashes.of(digest, async () => handle)).count, 1)
  })

  it('the read holds its own handle and releases it when done', async () => {
    const body = randomBytes(3000)
    const digest = sha256Digest(body)
    await t.store.put(digest, body, 'test')
    let released = 0
    const hasher = await new StoredPieceHashes().of(digest, async () => {
      const h = await t.store.openRead(digest)
      assert.ok(h !== undefined)
      return {
        ...h,
        release: async () => {
          released++
          await h.release()
        }
      }
    })
    assert.equal(hasher.hex(0, 1), expectedHex(body))
    assert.equal(released, 1)
  })

  it('it stays bounded: past the newest 256 digests, the oldest is read again', async () => {
    const hashes = new StoredPieceHashes()
    const first = memoryHandle(sha256Digest(Buffer.from('blob 0')), Buffer.from('blob 0'))
    await hashes.of(first.handle.digest, async () => first.handle)
    await hashes.of(first.handle.digest, async () => first.handle)
    assert.equal(first.streams(), 1)
    for (let i = 1; i <= 256; i++) {
      const body = Buffer.from(`blob ${i}`)
      const { handle } = memoryHandle(sha256Digest(body), body)
      await hashes.of(handle.digest, async () => handle)
    }
    await hashes.of(first.handle.digest, async () => first.handle)
    assert.equal(first.streams(), 2)
  })
})
