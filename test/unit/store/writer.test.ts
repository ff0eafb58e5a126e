import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, readdir, rm, stat, writeFile, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlobWriter } from '../../../src/store/writer.js'
import { StoreError, StoreFullError } from '../../../src/store/errors.js'
import { DigestMismatchError, sha256Digest, type Digest } from '../../../src/oci/digest.js'

/** What the kernel throws when the filesystem is full. */
function noSpace (): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
}

describe('BlobWriter: a blob is written to tmp/, verified, then moved into place', () => {
  let dir: string
  let finished: number

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-writer-'))
    finished = 0
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function create (digest: Digest): Promise<BlobWriter> {
    return await BlobWriter.create(digest, join(dir, 'tmp-file'), dir, () => {
      finished++
    })
  }

  /** A writer over a real file whose `writev` the test replaces (full disk, short writes). */
  async function withFile (digest: Digest, patch: (file: FileHandle) => void): Promise<BlobWriter> {
    const file = await open(join(dir, 'tmp-file'), 'wx')
    patch(file)
    return new BlobWriter(digest, join(dir, 'tmp-file'), dir, file, () => {
      finished++
    })
  }

  it('commits what it was given, in single chunks and vectors, under the final path', async () => {
    const parts = [randomBytes(1000), randomBytes(10), randomBytes(5000)]
    const body = Buffer.concat(parts)
    const writer = await create(sha256Digest(body))
    await writer.write(parts[0] as Buffer)
    await writer.write([parts[1] as Buffer, parts[2] as Buffer])
    assert.equal(writer.bytesWritten, body.byteLength)
    const final = join(dir, 'blobs', 'ab', 'blob')
    const { size, mtimeMs } = await writer.commit(final, 'test')
    assert.equal(size, body.byteLength)
    assert.deepEqual(await readFile(final), body)
    assert.equal((await stat(final)).mtimeMs, mtimeMs)
    await assert.rejects(stat(writer.tmpPath), { code: 'ENOENT' })
    assert.equal(finished, 1)
  })

  it('refuses content that does not match the digest, naming its source, and leaves nothing behind', async () => {
    const expected = sha256Digest(Buffer.from('what was asked for'))
    const writer = await create(expected)
    await writer.write(Buffer.from('what the upstream sent'))
    const final = join(dir, 'final')
    await assert.rejects(writer.commit(final, 'upstream registry.example'), (err: Error) => {
      assert.ok(err instanceof DigestMismatchError)
      assert.match(err.message, new RegExp(`upstream registry\\.example does not match ${expected}.*nothing was stored`))
      return true
    })
    assert.deepEqual(await readdir(dir), [])
    assert.equal(finished, 1, 'the lease is released')
  })

  it('verify checks the digest before commit, and commit then does not hash again', async () => {
    const body = randomBytes(100)
    const bad = await create(sha256Digest(randomBytes(100)))
    await bad.write(body)
    assert.throws(() => {
      bad.verify('peer 10.0.0.1')
    }, DigestMismatchError)
    await bad.abort()

    const good = await create(sha256Digest(body))
    await good.write(body)
    good.verify('test')
    good.verify('test')
    const { size } = await good.commit(join(dir, 'final'), 'test')
    assert.equal(size, 100)
  })

  it('a write that fails for want of space leaves file and digest as before, so it can be retried', async () => {
    const head = randomBytes(3000)
    const tail = randomBytes(3000)
    let fail = false
    const writer = await withFile(sha256Digest(Buffer.concat([head, tail])), file => {
      const writev = file.writev.bind(file)
      file.writev = async <T extends readonly NodeJS.ArrayBufferView[]>(buffers: T, position?: number) => {
        if (!fail) return await writev(buffers, position)
        // Part of the bytes reach the disk before it fills up.
        await file.write(Buffer.from(tail.subarray(0, 1000)), 0, 1000, position)
        throw noSpace()
      }
    })
    await writer.write(head)
    fail = true
    await assert.rejects(writer.write(tail), (err: Error) => {
      assert.ok(err instanceof StoreFullError)
      assert.match(err.message, new RegExp(`CACHE_DIR=${dir} is full`))
      return true
    })
    assert.equal(writer.bytesWritten, 3000)
    assert.equal((await stat(writer.tmpPath)).size, 3000, 'the partial write is cut off')
    fail = false
    await writer.write(tail)
    const final = join(dir, 'final')
    await writer.commit(final, 'test')
    assert.deepEqual(await readFile(final), Buffer.concat([head, tail]))
  })

  it('finishes a short vectored write chunk by chunk, at the right offsets', async () => {
    const parts = [randomBytes(700), randomBytes(900), randomBytes(400)]
    const body = Buffer.concat(parts)
    const writer = await withFile(sha256Digest(body), file => {
      file.writev = async <T extends readonly NodeJS.ArrayBufferView[]>(buffers: T, position?: number) => {
        // The kernel takes only 1000 bytes: the first chunk and part of the second.
        await file.write(body.subarray(0, 1000), 0, 1000, position)
        return { bytesWritten: 1000, buffers }
      }
    })
    await writer.write(parts)
    assert.equal(writer.bytesWritten, 2000)
    const final = join(dir, 'final')
    await writer.commit(final, 'test')
    assert.deepEqual(await readFile(final), body)
  })

  it('abort removes the temporary file and releases once; the writer then refuses writes', async () => {
    const writer = await create(sha256Digest(Buffer.from('x')))
    await writer.write(Buffer.from('partial'))
    await writer.abort()
    await writer.abort()
    assert.deepEqual(await readdir(dir), [])
    assert.equal(finished, 1)
    await assert.rejects(
      writer.write(Buffer.from('more')),
      (err: Error) => err instanceof StoreError && /after it was committed or aborted/.test(err.message)
    )
  })

  it('a second commit is refused without touching the committed blob', async () => {
    const body = Buffer.from('once')
    const writer = await create(sha256Digest(body))
    await writer.write(body)
    const final = join(dir, 'final')
    await writer.commit(final, 'test')
    await assert.rejects(writer.commit(final, 'test'), /finished twice/)
    assert.deepEqual(await readFile(final), body)
    assert.equal(finished, 1)
  })

  it('does not clobber a temporary file that already exists', async () => {
    await writeFile(join(dir, 'tmp-file'), "another writer's bytes")
    await assert.rejects(create(sha256Digest(Buffer.from('x'))), { code: 'EEXIST' })
    assert.equal(await readFile(join(dir, 'tmp-file'), 'utf8'), "another writer's bytes")
  })

  it('hashState is a copy: hashing the rest of a blob through it leaves the writer unchanged', async () => {
    const head = Buffer.from('stored part, ')
    const rest = Buffer.from('served without being stored')
    const writer = await create(sha256Digest(Buffer.concat([head, rest])))
    await writer.write(head)
    const state = writer.hashState()
    state.update(rest)
    state.verify('test')
    assert.equal(state.length, head.byteLength + rest.byteLength)
    await writer.write(rest)
    await writer.commit(join(dir, 'final'), 'test')
  })
})
