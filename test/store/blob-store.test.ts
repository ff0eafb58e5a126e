import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile, mkdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { BlobStore } from '../../src/store/blob-store.js'
import { blobPath } from '../../src/store/layout.js'
import { planEviction, type Candidate } from '../../src/store/eviction.js'
import { DigestMismatchError, sha256Digest, type Digest } from '../../src/oci/digest.js'

const log = pino({ level: 'silent' })
const MB = 1_000_000

async function put (store: BlobStore, data: Buffer): Promise<Digest> {
  const digest = sha256Digest(data)
  const writer = await store.createWriter(digest)
  await writer.write(data)
  await store.commit(writer, 'test')
  return digest
}

describe('store', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'p2p-cache-store-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  const policy = { maxSize: 10 * MB, highWatermark: 0.9, lowWatermark: 0.5, minAgeMs: 0 }

  describe('planEviction', () => {
    const now = 1_000_000
    const c = (name: string, size: number, accessedAt: number, pinned = false): Candidate => ({
      digest: `sha256:${name.padEnd(64, '0')}` as Digest,
      record: { size, accessedAt, createdAt: 0, mtimeMs: 0, ...(pinned ? { pinned } : {}) }
    })

    it('does nothing below the high watermark', () => {
      assert.equal(planEviction([c('a', 1, 0)], 8 * MB, policy, now, () => false).victims.length, 0)
    })

    it('removes least recently used first, down to the low watermark, skipping pinned and in-use blobs', () => {
      const all = [c('a', 3 * MB, 10), c('b', 3 * MB, 5, true), c('c', 3 * MB, 1), c('d', 3 * MB, 20)]
      const plan = planEviction(all, 12 * MB, policy, now, d => d.startsWith('sha256:d'))
      assert.deepEqual(plan.victims.map(v => v.digest[7]), ['c', 'a'])
      assert.equal(plan.overrodeMinAge, false)
    })

    it('keeps recently used blobs unless the hard bound is exceeded', () => {
      const young = { ...policy, minAgeMs: 1000 }
      const all = [c('a', 4 * MB, now - 10), c('b', 4 * MB, now - 5), c('c', 3 * MB, now - 1)]
      const plan = planEviction(all, 11 * MB, young, now, () => false)
      assert.deepEqual(plan.victims.map(v => v.digest[7]), ['a'])
      assert.equal(plan.overrodeMinAge, true)
      assert.equal(planEviction(all, 9.5 * MB, young, now, () => false).victims.length, 0)
    })
  })

  it('commits only verified content, and leaves nothing behind on a mismatch', async () => {
    const store = await BlobStore.open({ dir, log, policy })
    try {
      const good = randomBytes(1000)
      const digest = await put(store, good)
      assert.deepEqual(await readFile(blobPath(store.layout, digest)), good)
      const wrong = await store.createWriter(sha256Digest(randomBytes(10)))
      await wrong.write(randomBytes(10))
      await assert.rejects(store.commit(wrong, 'test'), DigestMismatchError)
      assert.deepEqual(await readdir(store.layout.tmp), [])
      assert.equal(store.size, 1000)
    } finally { await store.close() }
  })

  it('keeps the size bound and never evicts a blob that is being read', async () => {
    const store = await BlobStore.open({ dir, log, policy })
    try {
      const first = await put(store, randomBytes(2 * MB))
      const reading = await store.openRead(first)
      assert.ok(reading)
      const stream = reading.stream()
      for (let i = 0; i < 8; i++) {
        await put(store, randomBytes(2 * MB))
        await store.evict()
        assert.ok(store.size <= policy.maxSize, `size ${store.size} within bound after ${i + 1} writes`)
      }
      assert.ok(await store.stat(first), 'blob being read is still indexed')
      let n = 0
      for await (const chunk of stream) n += (chunk as Buffer).byteLength
      assert.equal(n, 2 * MB)
      await reading.release()
      await store.evict(true)
      assert.equal(await store.stat(first), undefined, 'evicted once released')
      assert.ok(store.size <= policy.maxSize * policy.lowWatermark)
    } finally { await store.close() }
  })

  it('honours pins', async () => {
    const store = await BlobStore.open({ dir, log, policy })
    try {
      const pinned = await put(store, randomBytes(3 * MB))
      assert.equal(await store.setPinned(pinned, true), true)
      for (let i = 0; i < 4; i++) await put(store, randomBytes(3 * MB))
      await store.evict(true)
      assert.ok(await store.stat(pinned))
    } finally { await store.close() }
  })

  it('reconciles index and files at start-up', async () => {
    let store = await BlobStore.open({ dir, log, policy })
    const kept = await put(store, randomBytes(1000))
    const lost = await put(store, randomBytes(1000))
    const layout = store.layout
    await store.close()
    // A file renamed but never indexed (killed in between), a stray file, a tmp leftover,
    // and an index record whose file is gone.
    const orphanData = randomBytes(500)
    const orphan = sha256Digest(orphanData)
    await mkdir(join(blobPath(layout, orphan), '..'), { recursive: true })
    await writeFile(blobPath(layout, orphan), orphanData)
    const bogus = sha256Digest(Buffer.from('bogus'))
    await mkdir(join(blobPath(layout, bogus), '..'), { recursive: true })
    await writeFile(blobPath(layout, bogus), 'not the content of that digest')
    await writeFile(join(layout.tmp, 'leftover'), 'partial')
    await rm(blobPath(layout, lost))

    store = await BlobStore.open({ dir, log, policy })
    try {
      assert.ok(await store.stat(kept))
      assert.ok(await store.stat(orphan), 'verified orphan indexed')
      assert.equal(await store.stat(lost), undefined)
      assert.equal(await store.stat(bogus), undefined)
      await assert.rejects(readFile(blobPath(layout, bogus)), { code: 'ENOENT' })
      assert.deepEqual(await readdir(layout.tmp), [])
      assert.equal(store.size, 1500)
    } finally { await store.close() }
  })

  it('re-verifies a file changed on disk and drops it when it no longer matches', async () => {
    const store = await BlobStore.open({ dir, log, policy })
    try {
      const data = randomBytes(4096)
      const digest = await put(store, data)
      const corrupt = Buffer.from(data)
      corrupt[100] = (corrupt[100] ?? 0) ^ 0xff
      await writeFile(blobPath(store.layout, digest), corrupt)
      assert.equal(await store.openRead(digest), undefined)
      assert.equal(await store.stat(digest), undefined)
      assert.equal(store.size, 0)
    } finally { await store.close() }
  })
})
