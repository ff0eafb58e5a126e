import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { PIECE_SIZE } from '../../../src/p2p/constants.js'
import { DigestMismatchError, sha256Digest, type DigestVerifier } from '../../../src/oci/digest.js'
import type { Stats } from '../../../src/metrics/stats.js'
import { StoreFullError } from '../../../src/store/errors.js'
import { GrowingFile, type GrowingFileInit, type RestOfBlob } from '../../../src/resolver/growing-file.js'
import { pseudoRandom } from '../fakes/registry-upstream.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { silentLog } from '../fakes/log.js'
import { newStats, until } from './setup.js'

const SIZE = 300_000

/** What a reader got so far, and how it ended. */
interface Follower {
  readonly got: number
  done: Promise<{ body: Buffer, error: Error | undefined }>
}

/** Reads `stream` as fast as it gives bytes. */
function follow (stream: Readable): Follower {
  const chunks: Buffer[] = []
  let got = 0
  const done = new Promise<{ body: Buffer, error: Error | undefined }>(resolve => {
    stream.on('data', (c: Buffer) => {
      chunks.push(c)
      got += c.byteLength
    })
    stream.on('end', () => {
      resolve({ body: Buffer.concat(chunks), error: undefined })
    })
    stream.on('error', err => {
      resolve({ body: Buffer.concat(chunks), error: err })
    })
  })
  return {
    get got () {
      return got
    },
    done
  }
}

/** Long enough for a woken reader to have read what it may. */
async function settle (): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, 30))
}

function sha (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** A `rest` that must not be asked for (the store never filled). */
// oxlint-disable-next-line require-yield -- it throws before any byte: that is the point
const NO_REST: RestOfBlob = async function* () {
  throw new Error('rest asked for')
}

describe('GrowingFile: readers follow the temporary file as it grows, and never get a wrong blob whole', () => {
  let t: TestStore
  let stats: Stats
  let files: GrowingFile[]

  beforeEach(async () => {
    t = await openTestStore({ policy: { maxSize: 64 * PIECE_SIZE } })
    stats = newStats()
    files = []
  })

  afterEach(async () => {
    for (const f of files) {
      await f.abort().catch(() => {})
      f.close()
    }
    await t.dispose()
  })

  /** A file for `body`'s digest, made (restarted once) and with its size known. */
  async function fileOf (body: Buffer, init: Partial<GrowingFileInit> = {}): Promise<GrowingFile> {
    const f = new GrowingFile({
      digest: sha256Digest(body),
      store: t.store,
      stats,
      log: silentLog(),
      hashPieces: true,
      rest: NO_REST,
      ...init
    })
    files.push(f)
    await f.restart()
    f.size = body.byteLength
    return f
  }

  it('readers follow the file as it grows, each from its own start; the last byte waits until the digest verified', async () => {
    const body = pseudoRandom(SIZE, 'grow')
    const f = await fileOf(body)
    const early = follow(f.reader(0, undefined))
    await f.append([body.subarray(0, 100_000)], false)
    await until(() => early.got === 100_000 - 1, 'the bytes written but the last')
    const late = follow(f.reader(50_000, undefined))
    await f.append([body.subarray(100_000, 200_000), body.subarray(200_000)], false)
    assert.equal(f.written, SIZE)
    await until(() => early.got === SIZE - 1 && late.got === SIZE - 50_000 - 1, 'every byte but the last')
    await settle()
    assert.equal(early.got, SIZE - 1, 'the last byte is held back')
    assert.equal(f.verified, false)
    f.verify('test')
    assert.equal(f.verified, false, 'verify alone does not release it: the source completes')
    f.complete()
    const a = await early.done
    const b = await late.done
    assert.equal(a.error, undefined)
    assert.ok(a.body.equals(body))
    assert.ok(b.body.equals(body.subarray(50_000)))
    const record = await f.commit('test', {})
    assert.equal(record.size, SIZE)
    assert.equal(stats.snapshot().store_full_events, 0)
  })

  it('a span that ends before the blob does: its last byte waits for the digest too, unless the reader checks piece hashes', async () => {
    const body = pseudoRandom(SIZE, 'span')
    const f = await fileOf(body)
    await f.append([body.subarray(0, 200_000)], false)
    const plain = follow(f.reader(0, 100_000))
    const pieces = follow(f.reader(0, 100_000, true, true))
    const blobEnd = follow(f.reader(100_000, undefined, true, true))
    const p = await pieces.done
    assert.equal(p.error, undefined)
    assert.ok(p.body.equals(body.subarray(0, 100_000)), 'served at once, the file not verified')
    await until(() => plain.got === 100_000 - 1, "the plain reader's span but its last byte")
    await f.append([body.subarray(200_000)], false)
    await until(() => blobEnd.got === SIZE - 100_000 - 1, "the pieces reader up to the blob's last byte")
    await settle()
    assert.equal(plain.got, 100_000 - 1, "the span's last byte is held back")
    assert.equal(blobEnd.got, SIZE - 100_000 - 1, "the blob's own last byte is held back from a pieces reader")
    f.verify('test')
    f.complete()
    assert.ok((await plain.done).body.equals(body.subarray(0, 100_000)))
    assert.ok((await blobEnd.done).body.equals(body.subarray(100_000)))
  })

  it('pieces written out of order wait ahead, and are adopted in order once the bytes before them are in', async () => {
    const body = pseudoRandom(2.5 * PIECE_SIZE, 'pieces')
    const piece = (i: number): Buffer => body.subarray(i * PIECE_SIZE, Math.min(body.byteLength, (i + 1) * PIECE_SIZE))
    const f = await fileOf(body)
    const reader = follow(f.reader(0, undefined))
    await f.writePiece(2 * PIECE_SIZE, [piece(2)])
    await f.writePiece(PIECE_SIZE, [piece(1)], sha(piece(1)))
    assert.equal(f.written, 0, 'nothing in order yet')
    assert.deepEqual([...f.aheadOffsets()].sort((a, b) => a - b), [PIECE_SIZE, 2 * PIECE_SIZE])
    await settle()
    assert.equal(reader.got, 0, 'a reader never sees bytes written ahead')
    const signal = new AbortController().signal
    const hashes = f.pieceHashes(0, 10, { signal })
    await f.writePiece(0, [piece(0)], sha(piece(0)))
    assert.equal(f.written, body.byteLength, 'piece 0 and the two ahead of it, in order')
    assert.deepEqual([...f.aheadOffsets()], [])
    assert.equal(f.peerBytes, body.byteLength)
    assert.ok((await hashes).startsWith(sha(piece(0))), 'a waiter for piece hashes wakes once piece 0 is in')
    assert.equal(
      await f.pieceHashes(0, 10, { signal }),
      [0, 1, 2].map(i => sha(piece(i))).join(''),
      'known hashes kept, the piece without one hashed'
    )
    await f.writePiece(PIECE_SIZE, [piece(1)], sha(piece(1)))
    assert.equal(f.written, body.byteLength, 'a piece already written is ignored')
    f.verify('test')
    f.complete()
    assert.ok((await reader.done).body.equals(body))
  })

  it('restart: a reader that had bytes is cut, one that had none follows the new copy; a new epoch', async () => {
    const body = pseudoRandom(SIZE, 'restart')
    const wrong = Buffer.from(body)
    wrong[10] = (wrong[10] ?? 0) ^ 0xff
    let restarts = 0
    const f = await fileOf(body, {
      onRestart: () => {
        restarts++
      }
    })
    assert.equal(restarts, 1, 'the first file is a restart too')
    const cut = follow(f.reader(0, undefined))
    const waiting = follow(f.reader(200_000, undefined))
    const piecesReader = follow(f.reader(200_000, undefined, true, true))
    await f.append([wrong.subarray(0, 100_000)], true)
    f.contributors.add('liar')
    await until(() => cut.got === 100_000 - 1, 'the first reader to have bytes')
    const epoch = f.epoch
    await f.restart()
    assert.equal(restarts, 2)
    assert.notEqual(f.epoch, epoch)
    assert.equal(f.written, 0)
    assert.equal(f.peerBytes, 0)
    assert.equal(f.contributors.size, 0)
    assert.equal(f.size, SIZE, 'the size is kept')
    const c = await cut.done
    assert.match(c.error?.message ?? '', /did not verify.*retry the request/)
    assert.equal(c.body.byteLength, 100_000 - 1)
    const p = await piecesReader.done
    assert.ok(p.error !== undefined, 'a pieces reader was told which copy it reads: never another one')
    await f.append([body], false)
    f.verify('upstream')
    f.complete()
    const w = await waiting.done
    assert.equal(w.error, undefined)
    assert.ok(w.body.equals(body.subarray(200_000)))
  })

  it('the download fails: readers are cut with its error, waiters for piece hashes give up', async () => {
    const body = pseudoRandom(SIZE, 'fail')
    const f = await fileOf(body)
    await f.append([body.subarray(0, 100_000)], false)
    const reader = follow(f.reader(0, undefined))
    await until(() => reader.got === 100_000 - 1, 'bytes')
    const hashes = f.pieceHashes(0, 1, { signal: new AbortController().signal })
    const err = new Error('upstream went away')
    f.fail(err)
    f.wake()
    assert.equal((await reader.done).error, err)
    assert.equal(await hashes, '')
    assert.equal(f.error, err)
  })

  describe('when the store fills up', () => {
    /** The test store, with a writer that takes `room` bytes and then fails as a full disk does; no room is ever made. */
    function fullAfter (room: number): { store: GrowingFileInit['store'], marked: () => number } {
      let marked = 0
      return {
        marked: () => marked,
        store: {
          createWriter: async digest => {
            const writer = await t.store.createWriter(digest)
            const write = writer.write.bind(writer)
            writer.write = async chunk => {
              const bytes = (Array.isArray(chunk) ? chunk : [chunk]).reduce((n, c) => n + c.byteLength, 0)
              if (writer.bytesWritten + bytes > room) throw new StoreFullError(t.dir)
              await write(chunk)
            }
            return writer
          },
          makeRoom: async () => 0,
          markFull: () => {
            marked++
          },
          commit: async (writer, source, meta) => await t.store.commit(writer, source, meta)
        }
      }
    }

    /** The rest of `body` from byte `from` in 30 kB chunks, hashed as RestOfBlob says; waits for `gate` before verifying. */
    function restOf (body: Buffer, gate: Promise<void> = Promise.resolve()): { rest: RestOfBlob, asked: number[] } {
      const asked: number[] = []
      return {
        asked,
        rest: async function* (from: number, verifier: DigestVerifier) {
          asked.push(from)
          for (let at = from; at < body.byteLength; at += 30_000) {
            const chunk = body.subarray(at, Math.min(body.byteLength, at + 30_000))
            verifier.update(chunk)
            yield chunk
          }
          await gate
          verifier.verify('the rest')
        }
      }
    }

    it("readers get the rest streamed through, its end once the whole digest verified; a peer's reader is cut", async () => {
      const body = pseudoRandom(SIZE, 'full')
      const { store, marked } = fullAfter(150_000)
      let open!: () => void
      const { rest, asked } = restOf(
        body,
        new Promise<void>(resolve => {
          open = resolve
        })
      )
      const f = await fileOf(body, { store, rest })
      const reader = follow(f.reader(0, undefined))
      const later = follow(f.reader(120_000, undefined))
      const peer = follow(f.reader(0, undefined, true))
      await f.append([body.subarray(0, 100_000)], false)
      const full = await f.append([body.subarray(100_000, 200_000)], false).then(() => undefined, (err: Error) => err)
      assert.ok(full instanceof StoreFullError, `got ${String(full)}`)
      assert.equal(f.written, 100_000)
      assert.equal(marked(), 1)
      assert.equal(stats.snapshot().store_full_events, 1)
      // What the download does when its source fails.
      f.fail(full)
      f.wake()
      assert.equal((await peer.done).error, full, "nothing is fetched on a peer's behalf")
      // The rest comes in 30 kB chunks: the last one, [280000, 300000), is held until the digest verified.
      await until(() => reader.got === SIZE - 20_000 && later.got === SIZE - 120_000 - 20_000, 'every chunk but the last')
      await settle()
      assert.equal(reader.got, SIZE - 20_000, 'the end of the blob waits for the digest')
      open()
      const a = await reader.done
      assert.equal(a.error, undefined)
      assert.ok(a.body.equals(body))
      assert.ok((await later.done).body.equals(body.subarray(120_000)))
      assert.deepEqual(asked, [100_000, 100_000], 'each reader asks for the rest from where the file ends')
    })

    it('a rest that does not verify never reaches a reader whole', async () => {
      const body = pseudoRandom(SIZE, 'full-wrong')
      const wrong = Buffer.from(body)
      wrong[SIZE - 2] = (wrong[SIZE - 2] ?? 0) ^ 0xff
      const { store } = fullAfter(150_000)
      const f = await fileOf(body, { store, rest: restOf(wrong).rest })
      const reader = follow(f.reader(0, undefined))
      await f.append([body.subarray(0, 100_000)], false)
      const full = await f.append([body.subarray(100_000)], false).then(() => undefined, (err: Error) => err)
      assert.ok(full instanceof StoreFullError)
      f.fail(full)
      f.wake()
      const got = await reader.done
      assert.ok(got.error instanceof DigestMismatchError, `got ${String(got.error)}`)
      assert.ok(got.body.byteLength < SIZE)
    })
  })
})
