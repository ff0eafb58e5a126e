import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { pino, type Logger } from 'pino'
import { BlobStore } from '../../../src/store/blob-store.js'
import { blobPath } from '../../../src/store/layout.js'
import { StoreFullError, StoreOpenError, StoreUnavailableError, writeError } from '../../../src/store/errors.js'
import { DigestMismatchError, sha256Digest, type Digest } from '../../../src/oci/digest.js'
import { FakeClock } from '../fakes/clock.js'
import { silentLog } from '../fakes/log.js'
import { openTestStore, type TestStore, type TestStoreOptions } from '../fakes/store.js'

const MINUTE = 60_000

/** Stores `data` through a writer, as the resolvers do for streamed blobs. */
async function write (store: BlobStore, data: Buffer): Promise<Digest> {
  const digest = sha256Digest(data)
  const writer = await store.createWriter(digest)
  await writer.write(data)
  await store.commit(writer, 'test')
  return digest
}

async function put (store: BlobStore, data: Buffer): Promise<Digest> {
  const digest = sha256Digest(data)
  await store.put(digest, data, 'test')
  return digest
}

/** A logger whose lines the test reads. */
function capturingLog (): { log: Logger, lines: Array<{ level: number, msg: string }> } {
  const lines: Array<{ level: number, msg: string }> = []
  return {
    log: pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          lines.push(JSON.parse(line) as { level: number, msg: string })
        }
      }
    ),
    lines
  }
}

/** What writes look like on a full filesystem: the next `failures` writers fail as BlobWriter does on ENOSPC. */
function fillFilesystem (t: TestStore, failures: number): void {
  const create = t.store.createWriter.bind(t.store)
  let left = failures
  t.store.createWriter = async (digest: Digest) => {
    const writer = await create(digest)
    if (left > 0) {
      left--
      writer.write = async () => {
        throw writeError(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }), t.dir)
      }
    }
    return writer
  }
}

describe('BlobStore: content-addressed files plus a level index (docs/design.md §3.5)', () => {
  let t: TestStore
  let clock: FakeClock
  const events = { commits: [] as Digest[], deletes: [] as Digest[], evictions: [] as Array<[Digest, number]>, corrupt: [] as Digest[] }

  async function open (options: TestStoreOptions = {}): Promise<BlobStore> {
    clock = new FakeClock()
    events.commits = []
    events.deletes = []
    events.evictions = []
    events.corrupt = []
    t = await openTestStore({
      clock,
      onCommit: d => {
        events.commits.push(d)
      },
      onDelete: d => {
        events.deletes.push(d)
      },
      onEvict: (d, size) => {
        events.evictions.push([d, size])
      },
      onCorrupt: d => {
        events.corrupt.push(d)
      },
      ...options,
      policy: { maxSize: 10_000, ...options.policy }
    })
    return t.store
  }

  afterEach(async () => {
    await t?.dispose()
  })

  describe('writing and reading', () => {
    it('put stores a body that reads back whole and by byte range, with its media type and size', async () => {
      const store = await open()
      const body = randomBytes(3000)
      const digest = sha256Digest(body)
      const record = await store.put(digest, body, 'test', { mediaType: 'application/vnd.oci.image.manifest.v1+json' })
      assert.equal(record.size, 3000)
      assert.equal(record.mediaType, 'application/vnd.oci.image.manifest.v1+json')
      assert.equal(record.createdAt, clock.now())
      assert.deepEqual(await store.stat(digest), record)
      assert.equal(store.size, 3000)
      assert.deepEqual(events.commits, [digest])
      const handle = await store.openRead(digest)
      assert.ok(handle)
      try {
        assert.deepEqual(await handle.read(), body)
        const chunks: Buffer[] = []
        for await (const chunk of handle.stream(100, 199)) chunks.push(chunk as Buffer)
        assert.deepEqual(Buffer.concat(chunks), body.subarray(100, 200), 'the end of a range is inclusive, as in HTTP')
      } finally {
        await handle.release()
      }
    })

    it('commits only verified content, and leaves nothing behind on a mismatch', async () => {
      const store = await open()
      const good = randomBytes(1000)
      const digest = await write(store, good)
      assert.deepEqual(await readFile(blobPath(store.layout, digest)), good)
      const wrong = await store.createWriter(sha256Digest(randomBytes(10)))
      await wrong.write(randomBytes(10))
      await assert.rejects(store.commit(wrong, 'test'), DigestMismatchError)
      await assert.rejects(store.put(sha256Digest(Buffer.from('a')), Buffer.from('b'), 'peer'), DigestMismatchError)
      assert.deepEqual(await readdir(store.layout.tmp), [])
      assert.equal(store.size, 1000)
      assert.deepEqual(events.commits, [digest])
    })

    it('a writer made without a digest commits under the sha256 of its bytes, and only once keyed', async () => {
      const store = await open()
      const body = randomBytes(3000)
      const unkeyed = await store.createWriter()
      await unkeyed.write(body.subarray(0, 1000))
      await unkeyed.write(body.subarray(1000))
      assert.equal(unkeyed.keyByContent(), sha256Digest(body))
      await store.commit(unkeyed, 'test')
      assert.deepEqual(await readFile(blobPath(store.layout, sha256Digest(body))), body)
      const never = await store.createWriter()
      await never.write(randomBytes(10))
      await assert.rejects(store.commit(never, 'test'), DigestMismatchError, 'a writer never keyed does not commit')
      assert.deepEqual(await readdir(store.layout.tmp), [])
      assert.deepEqual(events.commits, [sha256Digest(body)])
    })

    it('an unknown digest has no record and opens to nothing', async () => {
      const store = await open()
      const digest = sha256Digest(Buffer.from('never stored'))
      assert.equal(await store.stat(digest), undefined)
      assert.equal(await store.openRead(digest), undefined)
      assert.equal(await store.delete(digest), false)
      assert.equal(await store.setPinned(digest, true), false)
    })

    it('storing a blob again counts its size once and keeps its creation time and pin', async () => {
      const store = await open()
      const body = randomBytes(2000)
      const digest = await put(store, body)
      const created = clock.now()
      await store.setPinned(digest, true)
      clock.advance(MINUTE)
      const again = await store.put(digest, body, 'test')
      assert.equal(store.size, 2000)
      assert.equal(again.createdAt, created)
      assert.equal(again.accessedAt, clock.now())
      assert.equal(again.pinned, true)
    })

    it('concurrent commits of the same blob count its size once', async () => {
      const store = await open()
      const body = randomBytes(2000)
      const digest = sha256Digest(body)
      const writers = await Promise.all([1, 2, 3].map(async () => await store.createWriter(digest)))
      await Promise.all(writers.map(async w => {
        await w.write(body)
      }))
      await Promise.all(writers.map(async (w, i) => await store.commit(w, `peer ${i}`)))
      assert.equal(store.size, 2000)
      assert.equal(await store.delete(digest), true)
      assert.equal(store.size, 0)
    })

    it('a read recording its access time does not undo a pin set meanwhile', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(100))
      clock.advance(2 * MINUTE)
      const [handle] = await Promise.all([store.openRead(digest), store.setPinned(digest, true)])
      await handle?.release()
      assert.equal((await store.stat(digest))?.pinned, true)
    })

    it('a read racing a delete does not bring the record back', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(100))
      clock.advance(2 * MINUTE)
      const [handle] = await Promise.all([store.openRead(digest), store.delete(digest)])
      await handle?.release()
      assert.equal(await store.stat(digest), undefined)
      assert.equal(store.size, 0)
    })

    it('entries lists every blob with its record', async () => {
      const store = await open()
      const a = await put(store, randomBytes(10))
      const b = await put(store, randomBytes(20))
      const seen = new Map<Digest, number>()
      for await (const [digest, record] of store.entries()) seen.set(digest, record.size)
      assert.deepEqual(seen, new Map([[a, 10], [b, 20]]))
    })

    it('records a read as an access at most once a minute, for LRU order', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(100))
      const stored = clock.now()
      clock.advance(MINUTE - 1)
      await (await store.openRead(digest))?.release()
      assert.equal((await store.stat(digest))?.accessedAt, stored, 'within the minute: no index write')
      clock.advance(1)
      const handle = await store.openRead(digest)
      await handle?.release()
      await handle?.release()
      assert.equal((await store.stat(digest))?.accessedAt, clock.now())
    })
  })

  describe('removing', () => {
    it('delete removes file and record, tells the swarm, and updates the size', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(500))
      const kept = await put(store, randomBytes(300))
      assert.equal(await store.delete(digest), true)
      await assert.rejects(stat(blobPath(store.layout, digest)), { code: 'ENOENT' })
      assert.equal(await store.stat(digest), undefined)
      assert.equal(store.size, 300)
      assert.deepEqual(events.deletes, [digest])
      assert.equal(await store.delete(digest), false)
      assert.ok(await store.stat(kept))
    })

    it('concurrent deletes of one blob subtract its size once and report it gone once', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(1000))
      await put(store, randomBytes(200))
      const results = await Promise.all([store.delete(digest), store.delete(digest), store.delete(digest)])
      assert.deepEqual(results.filter(Boolean).length, 1)
      assert.equal(store.size, 200)
      assert.deepEqual(events.deletes, [digest])
    })

    it('clear removes every blob except those being read', async () => {
      const store = await open()
      const reading = await put(store, randomBytes(100))
      await put(store, randomBytes(100))
      await put(store, randomBytes(100))
      const handle = await store.openRead(reading)
      try {
        assert.equal(await store.clear(), 2)
        assert.equal(store.size, 100)
        assert.deepEqual(await handle?.read(), await readFile(blobPath(store.layout, reading)))
      } finally {
        await handle?.release()
      }
      assert.equal(await store.clear(), 1)
      assert.equal(store.size, 0)
    })
  })

  describe('eviction', () => {
    it('keeps the size bound and never evicts a blob that is being read', async () => {
      const store = await open()
      const first = await put(store, randomBytes(2000))
      const reading = await store.openRead(first)
      assert.ok(reading)
      for (let i = 0; i < 8; i++) {
        clock.advance(1)
        await put(store, randomBytes(2000))
        await store.evict()
        assert.ok(store.size <= store.policy.maxSize, `size ${store.size} within bound after ${i + 1} writes`)
      }
      assert.ok(await store.stat(first), 'blob being read is still indexed')
      assert.equal((await reading.read()).byteLength, 2000)
      await reading.release()
      await store.evict(true)
      assert.equal(await store.stat(first), undefined, 'evicted once released')
      assert.ok(store.size <= store.policy.maxSize * store.policy.lowWatermark)
    })

    it('a commit past the high watermark evicts the least recently used blobs old enough to go', async () => {
      const store = await open({ policy: { minAgeMs: MINUTE } })
      const a = await put(store, randomBytes(2000))
      clock.advance(1)
      const b = await put(store, randomBytes(2000))
      clock.advance(1)
      const c = await put(store, randomBytes(2000))
      clock.advance(2 * MINUTE)
      await (await store.openRead(a))?.release()
      const d = await put(store, randomBytes(2000))
      const e = await put(store, randomBytes(2000))
      await store.evict()
      assert.equal(store.size, 6000)
      assert.deepEqual(events.evictions, [[b, 2000], [c, 2000]])
      assert.deepEqual(events.deletes, [b, c])
      for (const kept of [a, d, e]) assert.ok(await store.stat(kept), 'read or written within the minute')
    })

    it('over CACHE_MAX_SIZE with only recent blobs, evicts some anyway and warns to raise the bound', async () => {
      const { log, lines } = capturingLog()
      const store = await open({ log, policy: { minAgeMs: 10 * MINUTE } })
      for (let i = 0; i < 4; i++) {
        await write(store, randomBytes(3000))
        clock.advance(1)
      }
      await store.evict()
      assert.equal(store.size, 9000)
      assert.ok(lines.some(l => l.level === 40 && /raise CACHE_MAX_SIZE/.test(l.msg)))
    })

    it('gc (force) prunes to the low watermark below the high one; pins are honoured and can be lifted', async () => {
      const store = await open()
      const pinned = await put(store, randomBytes(6000))
      assert.equal(await store.setPinned(pinned, true), true)
      clock.advance(1)
      await put(store, randomBytes(3000))
      assert.equal(await store.evict(), 0, 'at the high watermark, not above')
      assert.equal(await store.evict(true), 1)
      assert.ok(await store.stat(pinned))
      assert.equal(await store.evict(true), 0, 'a pinned blob stays even above the low watermark')
      await store.setPinned(pinned, false)
      assert.equal((await store.stat(pinned))?.pinned, undefined)
      assert.equal(await store.evict(true), 1)
      assert.equal(store.size, 0)
    })

    it('makeRoom frees the least recently used blobs whatever their age, never pinned or in-use ones', async () => {
      const store = await open({ policy: { minAgeMs: 10 * MINUTE } })
      const pinned = await put(store, randomBytes(1000))
      await store.setPinned(pinned, true)
      clock.advance(1)
      const reading = await put(store, randomBytes(1000))
      clock.advance(1)
      const old = await put(store, randomBytes(1000))
      clock.advance(1)
      const young = await put(store, randomBytes(1000))
      const handle = await store.openRead(reading)
      try {
        assert.equal(await store.makeRoom(1500), 2000)
        assert.deepEqual(events.evictions.map(([d]) => d), [old, young])
        assert.equal(await store.makeRoom(1), 0, 'nothing else may go')
        assert.equal(store.size, 2000)
      } finally {
        await handle?.release()
      }
    })
  })

  describe('a full filesystem', () => {
    it('put makes room by evicting older blobs once, then stores the body', async () => {
      const store = await open()
      const old = await put(store, randomBytes(1000))
      clock.advance(1)
      fillFilesystem(t, 1)
      const body = randomBytes(500)
      const digest = await put(store, body)
      assert.deepEqual(
        await store.openRead(digest).then(async h => {
          try {
            return await h?.read()
          } finally {
            await h?.release()
          }
        }),
        body
      )
      assert.equal(await store.stat(old), undefined)
      assert.deepEqual(events.evictions, [[old, 1000]])
      assert.equal(store.full, false)
      assert.deepEqual(await readdir(store.layout.tmp), [])
    })

    it('when there is still no room, put fails with StoreFullError and the store reports itself full until a commit', async () => {
      const { log, lines } = capturingLog()
      const store = await open({ log })
      await put(store, randomBytes(1000))
      fillFilesystem(t, 2)
      const body = randomBytes(500)
      await assert.rejects(put(store, body), (err: Error) => err instanceof StoreFullError && err.message.includes(`CACHE_DIR=${t.dir}`))
      assert.equal(store.full, true)
      assert.equal(store.size, 0, 'the older blob made way')
      assert.deepEqual(await readdir(store.layout.tmp), [])
      assert.equal(lines.filter(l => l.msg === 'store filesystem full').length, 1)
      await put(store, body)
      assert.equal(store.full, false)
    })

    it('with only pinned blobs, put fails at once and removes nothing', async () => {
      const store = await open()
      const pinned = await put(store, randomBytes(1000))
      await store.setPinned(pinned, true)
      fillFilesystem(t, 1)
      await assert.rejects(put(store, randomBytes(10)), StoreFullError)
      assert.ok(await store.stat(pinned))
      assert.equal(store.full, true)
    })

    it('space() reads the free space and clears the full state once there is room again', async () => {
      const store = await open()
      assert.equal(store.full, false)
      store.markFull(new StoreFullError(t.dir))
      assert.equal(store.full, true)
      const space = await store.space()
      assert.equal(typeof space.free, 'number')
      assert.equal(space.full, (space.free ?? 0) < 16 * 1024 * 1024, 'the test filesystem has room, so the state clears')
    })
  })

  describe("files changed behind the store's back", () => {
    it('a file that no longer matches its digest is removed and reported, and the blob is missing', async () => {
      const store = await open()
      const data = randomBytes(4096)
      const digest = await write(store, data)
      const corrupt = Buffer.from(data)
      corrupt[100] = (corrupt[100] ?? 0) ^ 0xff
      await writeFile(blobPath(store.layout, digest), corrupt)
      await utimes(blobPath(store.layout, digest), new Date(), new Date(Date.now() + 5000))
      assert.equal(await store.openRead(digest), undefined)
      assert.equal(await store.stat(digest), undefined)
      await assert.rejects(stat(blobPath(store.layout, digest)), { code: 'ENOENT' })
      assert.equal(store.size, 0)
      assert.deepEqual(events.corrupt, [digest])
      assert.deepEqual(events.deletes, [digest])
    })

    it('a truncated file is removed as corrupt', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(1000))
      await writeFile(blobPath(store.layout, digest), randomBytes(10))
      assert.equal(await store.openRead(digest), undefined)
      assert.deepEqual(events.corrupt, [digest])
      assert.equal(store.size, 0)
    })

    it('a file touched but unchanged is verified once and served', async () => {
      const store = await open()
      const data = randomBytes(1000)
      const digest = await put(store, data)
      const path = blobPath(store.layout, digest)
      await utimes(path, new Date(), new Date(Date.now() + 5000))
      const handle = await store.openRead(digest)
      try {
        assert.deepEqual(await handle?.read(), data)
      } finally {
        await handle?.release()
      }
      assert.equal(
        (await store.stat(digest))?.mtimeMs,
        (await stat(path)).mtimeMs,
        'the new mtime is recorded: no hashing on the next read'
      )
      assert.deepEqual(events.corrupt, [])
    })

    it('a file deleted from disk makes the blob missing, without calling it corrupt', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(1000))
      await rm(blobPath(store.layout, digest))
      assert.equal(await store.openRead(digest), undefined)
      assert.equal(await store.stat(digest), undefined)
      assert.equal(store.size, 0)
      assert.deepEqual(events.deletes, [digest])
      assert.deepEqual(events.corrupt, [])
    })

    it('a file that exists but cannot be opened now is a StoreUnavailableError, and the record stays', async () => {
      const store = await open()
      const digest = await put(store, randomBytes(1000))
      const path = blobPath(store.layout, digest)
      await rm(path)
      await symlink(path, path)
      await assert.rejects(store.openRead(digest), (err: Error) => err instanceof StoreUnavailableError && /ELOOP/.test(err.message))
      assert.ok(await store.stat(digest))
      assert.equal(store.size, 1000)
    })
  })

  describe('opening and reopening', () => {
    it('reopening keeps records, pins, media types, access times and the size account', async () => {
      const store = await open()
      const a = await store.put(sha256Digest(Buffer.from('{}')), Buffer.from('{}'), 'test', { mediaType: 'application/json' })
      const pinned = await put(store, randomBytes(1000))
      await store.setPinned(pinned, true)
      const before = new Map<Digest, unknown>()
      for await (const [digest, record] of store.entries()) before.set(digest, record)
      const reopened = await t.reopen()
      const after = new Map<Digest, unknown>()
      for await (const [digest, record] of reopened.entries()) after.set(digest, record)
      assert.deepEqual(after, before)
      assert.equal(reopened.size, 1000 + a.size)
    })

    it("reopening reconciles: tmp leftovers go, a verified orphan is indexed, a lost file's record is dropped", async () => {
      const store = await open()
      const kept = await put(store, randomBytes(1000))
      const lost = await put(store, randomBytes(1000))
      const layout = store.layout
      await store.close()
      const orphanData = randomBytes(500)
      const orphan = sha256Digest(orphanData)
      await mkdir(dirname(blobPath(layout, orphan)), { recursive: true })
      await writeFile(blobPath(layout, orphan), orphanData)
      await writeFile(join(layout.tmp, 'leftover'), 'partial')
      await rm(blobPath(layout, lost))
      clock.advance(MINUTE)
      const reopened = await BlobStore.open({ dir: t.dir, log: silentLog(), clock, policy: store.policy })
      t.store = reopened
      assert.ok(await reopened.stat(kept))
      assert.equal((await reopened.stat(orphan))?.accessedAt, clock.now(), 'indexed as accessed at start-up')
      assert.equal(await reopened.stat(lost), undefined)
      assert.deepEqual(await readdir(layout.tmp), [])
      assert.equal(reopened.size, 1500)
    })

    it('a CACHE_DIR that cannot be created is a StoreOpenError saying to give a writable directory', async () => {
      await open()
      const file = join(t.dir, 'a-file')
      await writeFile(file, 'not a directory')
      await assert.rejects(BlobStore.open({ dir: file, log: silentLog(), policy: t.store.policy }), (err: Error) => {
        assert.ok(err instanceof StoreOpenError)
        assert.match(err.message, new RegExp(`CACHE_DIR=${file}: cannot create .*ENOTDIR.*writable directory`))
        return true
      })
    })

    it('a CACHE_DIR in use by another process is refused with what to do', async () => {
      const store = await open()
      await assert.rejects(BlobStore.open({ dir: t.dir, log: silentLog(), policy: store.policy }), (err: Error) => {
        assert.ok(err instanceof StoreOpenError)
        assert.match(err.message, /in use by another p2p-cache process.*give this one its own CACHE_DIR/)
        return true
      })
      assert.ok(await store.stat(sha256Digest(Buffer.from('x'))) === undefined, 'the open store still works')
    })
  })
})
