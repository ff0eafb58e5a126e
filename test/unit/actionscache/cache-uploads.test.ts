import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { CacheUploads, CacheUploadError } from '../../../src/actionscache/cache-uploads.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { FakeClock } from '../fakes/clock.js'
import { silentLog } from '../fakes/log.js'
import { openTestStore, type TestStore } from '../fakes/store.js'

describe('Actions cache uploads: Azure blocks in any order, committed only when finalized', () => {
  let t: TestStore
  let clock: FakeClock
  let uploads: CacheUploads
  const entry = { repository: undefined, scope: 'refs/heads/main', version: 'v', key: 'k' }

  beforeEach(async () => {
    t = await openTestStore()
    clock = new FakeClock()
    uploads = new CacheUploads({ store: t.store, clock, idleMs: 1000, log: silentLog() })
  })

  afterEach(async () => {
    await uploads.close()
    await t.dispose()
  })

  it("blocks sent out of order become the archive in the block list's order; only finalizing commits it", async () => {
    const id = await uploads.start(entry)
    await uploads.putBlock(id, 'b', Readable.from([Buffer.from('world')]))
    await uploads.putBlock(id, 'a', Readable.from([Buffer.from('hello ')]))
    await uploads.putBlockList(id, ['a', 'b'])
    const digest = sha256Digest(Buffer.from('hello world'))
    assert.equal(await t.store.stat(digest), undefined, 'not in the store before it is finalized')
    assert.deepEqual(await uploads.finish(id, entry, 11), { digest, size: 11 })
    assert.equal((await t.store.stat(digest))?.size, 11)
    assert.deepEqual(await readdir(t.store.layout.tmp), [])
  })

  it('a wrong size, a missing block, a finalize of nothing: refused, and nothing is left', async () => {
    const id = await uploads.start(entry)
    await uploads.putBlob(id, Readable.from([Buffer.from('abc')]))
    await assert.rejects(uploads.finish(id, entry, 4), (err: CacheUploadError) => err.status === 400 && /4.*3/.test(err.message))
    assert.equal(await t.store.stat(sha256Digest(Buffer.from('abc'))), undefined)
    const other = await uploads.start(entry)
    await assert.rejects(uploads.putBlockList(other, ['nope']), (err: CacheUploadError) => err.code === 'InvalidBlockList')
    await assert.rejects(uploads.finish(other, entry, 0), (err: CacheUploadError) => /nothing was uploaded/.test(err.message))
    assert.deepEqual(await readdir(t.store.layout.tmp), [])
  })

  it('an upload never finalized expires with its blocks and its archive', async () => {
    const id = await uploads.start(entry)
    await uploads.putBlock(id, 'a', Readable.from([Buffer.alloc(1000)]))
    const blob = await uploads.start({ ...entry, key: 'k2' })
    await uploads.putBlob(blob, Readable.from([Buffer.alloc(2000)]))
    assert.equal((await readdir(t.store.layout.tmp)).length, 2)
    clock.advance(1001)
    await uploads.start({ ...entry, key: 'k3' })
    assert.deepEqual(await readdir(t.store.layout.tmp), [], 'space given back')
    assert.equal(uploads.find(entry), undefined)
  })
})
