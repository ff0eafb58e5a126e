import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Level } from 'level'
import { freeForOpen, hashFile, reconcile, type BlobIndex } from '../../../src/store/reconcile.js'
import { blobPath, storeLayout, type StoreLayout } from '../../../src/store/layout.js'
import type { BlobRecord } from '../../../src/store/record.js'
import { sha256Digest, type Digest } from '../../../src/oci/digest.js'

const NOW = Date.UTC(2026, 0, 1)

describe('reconcile: index and files agree after any stop', () => {
  let dir: string
  let layout: StoreLayout
  let db: Level<string, unknown>
  let index: BlobIndex

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-reconcile-'))
    layout = storeLayout(dir)
    await mkdir(layout.blobs, { recursive: true })
    await mkdir(layout.tmp, { recursive: true })
    db = new Level<string, unknown>(layout.index, { valueEncoding: 'json' })
    index = db.sublevel<string, BlobRecord>('blobs', { valueEncoding: 'json' })
    await db.open()
  })
  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** Writes `data` as the blob file of `digest` (its own digest unless told otherwise). */
  async function blobFile (data: Buffer, digest: Digest = sha256Digest(data)): Promise<Digest> {
    await mkdir(dirname(blobPath(layout, digest)), { recursive: true })
    await writeFile(blobPath(layout, digest), data)
    return digest
  }

  /** A committed blob: file and record. */
  async function committed (data: Buffer, at = 1000): Promise<Digest> {
    const digest = await blobFile(data)
    const { mtimeMs } = await stat(blobPath(layout, digest))
    await index.put(digest, { size: data.byteLength, createdAt: at, accessedAt: at, mtimeMs })
    return digest
  }

  async function keys (): Promise<string[]> {
    return await index.keys().all()
  }

  it('leaves a consistent store as it was', async () => {
    const digest = await committed(randomBytes(100), 42)
    const before = await index.get(digest)
    const report = await reconcile(layout, index, NOW)
    assert.deepEqual(report, { tmpRemoved: 0, indexedOrphans: 0, removedFiles: 0, removedRecords: 0 })
    assert.deepEqual(await index.get(digest), before, 'access times are kept')
  })

  it('empties tmp/ of partial writes, files and folders alike', async () => {
    await writeFile(join(layout.tmp, 'abc-partial'), 'half a blob')
    await mkdir(join(layout.tmp, 'folder'))
    await writeFile(join(layout.tmp, 'folder', 'x'), 'x')
    const report = await reconcile(layout, index, NOW)
    assert.equal(report.tmpRemoved, 2)
    assert.deepEqual(await readdir(layout.tmp), [])
  })

  it('drops records whose file is gone, and records and files whose sizes disagree', async () => {
    const kept = await committed(randomBytes(100))
    const gone = await committed(randomBytes(100))
    await rm(blobPath(layout, gone))
    const truncated = await committed(randomBytes(100))
    await writeFile(blobPath(layout, truncated), randomBytes(50))
    const report = await reconcile(layout, index, NOW)
    assert.deepEqual(await keys(), [kept])
    assert.equal(report.removedRecords, 2)
    assert.equal(report.removedFiles, 1)
    await assert.rejects(stat(blobPath(layout, truncated)), { code: 'ENOENT' })
  })

  it('indexes a file renamed into place but never indexed when it verifies, as accessed now', async () => {
    const data = randomBytes(300)
    const orphan = await blobFile(data)
    const report = await reconcile(layout, index, NOW)
    assert.equal(report.indexedOrphans, 1)
    const record = await index.get(orphan)
    assert.deepEqual(record, { size: 300, createdAt: NOW, accessedAt: NOW, mtimeMs: (await stat(blobPath(layout, orphan))).mtimeMs })
  })

  it('removes an unindexed file that does not match its name', async () => {
    const liar = await blobFile(Buffer.from('not the content of that digest'), sha256Digest(Buffer.from('other')))
    const report = await reconcile(layout, index, NOW)
    assert.equal(report.removedFiles, 1)
    assert.equal(report.indexedOrphans, 0)
    assert.deepEqual(await keys(), [])
    await assert.rejects(stat(blobPath(layout, liar)), { code: 'ENOENT' })
  })

  it('removes what has no business under blobs/: bad names, misfiled blobs, folders', async () => {
    const data = randomBytes(10)
    const hex = sha256Digest(data).slice(7)
    const wrongPrefix = hex.startsWith('00') ? '11' : '00'
    await mkdir(join(layout.blobs, wrongPrefix), { recursive: true })
    await writeFile(join(layout.blobs, wrongPrefix, hex), data)
    await mkdir(join(layout.blobs, 'ab'), { recursive: true })
    await writeFile(join(layout.blobs, 'ab', 'not-a-digest'), 'x')
    await mkdir(join(layout.blobs, 'cd', `cd${'0'.repeat(62)}`), { recursive: true })
    const report = await reconcile(layout, index, NOW)
    assert.equal(report.removedFiles, 3)
    assert.deepEqual(await readdir(join(layout.blobs, wrongPrefix)), [])
    assert.deepEqual(await readdir(join(layout.blobs, 'ab')), [])
    assert.deepEqual(await readdir(join(layout.blobs, 'cd')), [])
    assert.deepEqual(await keys(), [])
  })

  it('drops records whose key is not a digest', async () => {
    await index.put('garbage', { size: 1, createdAt: 0, accessedAt: 0, mtimeMs: 0 })
    const report = await reconcile(layout, index, NOW)
    assert.equal(report.removedRecords, 1)
    assert.deepEqual(await keys(), [])
  })

  it("hashFile gives the digest of a file's content", async () => {
    const data = randomBytes(3 * 1024 * 1024)
    const digest = await blobFile(data)
    assert.equal(await hashFile(blobPath(layout, digest)), digest)
  })
})

describe('freeForOpen: room for the index on a full filesystem', () => {
  let dir: string
  let layout: StoreLayout
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-free-'))
    layout = storeLayout(dir)
    await mkdir(layout.tmp, { recursive: true })
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function file (size: number, mtimeSeconds: number): Promise<Digest> {
    const data = randomBytes(size)
    const digest = sha256Digest(data)
    const path = blobPath(layout, digest)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, data)
    await utimes(path, mtimeSeconds, mtimeSeconds)
    return digest
  }

  it('empties tmp/ first, then removes the least recently written blobs until enough is freed', async () => {
    await writeFile(join(layout.tmp, 'partial'), randomBytes(100))
    const newest = await file(500, 3000)
    const oldest = await file(500, 1000)
    const middle = await file(500, 2000)
    const { removed, freed } = await freeForOpen(layout, 700)
    assert.deepEqual(removed, [oldest, middle])
    assert.equal(freed, 1100)
    assert.deepEqual(await readdir(layout.tmp), [])
    assert.ok(await stat(blobPath(layout, newest)))
  })

  it('removes no blob when tmp/ alone frees enough, and copes with a store that has no blobs yet', async () => {
    await writeFile(join(layout.tmp, 'partial'), randomBytes(1000))
    assert.deepEqual(await freeForOpen(layout, 1000), { removed: [], freed: 1000 })
    assert.deepEqual(await freeForOpen(layout, 1000), { removed: [], freed: 0 })
  })
})
