import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { UploadSessions } from '../../../src/push/upload-sessions.js'
import { OciError } from '../../../src/oci/errors.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { FakeClock } from '../fakes/clock.js'
import { silentLog } from '../fakes/log.js'
import { openTestStore, type TestStore } from '../fakes/store.js'

describe('upload sessions: bounded, expiring, verified before commit', () => {
  let t: TestStore
  let clock: FakeClock
  let uploads: UploadSessions

  beforeEach(async () => {
    t = await openTestStore()
    clock = new FakeClock()
    uploads = new UploadSessions({ store: t.store, maxSessions: 2, idleMs: 1000, clock, log: silentLog() })
  })

  afterEach(async () => {
    await uploads.close()
    await t.dispose()
  })

  it('chunks append in order; the digest decides; a session belongs to its repository', async () => {
    const id = await uploads.start('local/a')
    assert.equal(await uploads.append('local/a', id, Readable.from([Buffer.from('hello ')])), 6)
    await assert.rejects(
      uploads.append('local/a', id, Readable.from([Buffer.from('x')]), { start: 3 }),
      (err: OciError) => err.status === 416
    )
    assert.equal(uploads.offset('local/b', id), undefined, 'another repository does not see it')
    await uploads.append('local/a', id, Readable.from([Buffer.from('world')]), { start: 6 })
    await uploads.finish('local/a', id, sha256Digest(Buffer.from('hello world')))
    assert.ok(await t.store.stat(sha256Digest(Buffer.from('hello world'))) !== undefined)
  })

  it('a wrong digest stores nothing and ends the session', async () => {
    const id = await uploads.start('local/a')
    await uploads.append('local/a', id, Readable.from([Buffer.from('abc')]))
    await assert.rejects(uploads.finish('local/a', id, sha256Digest(Buffer.from('abd'))), (err: OciError) => err.code === 'DIGEST_INVALID')
    assert.equal(uploads.offset('local/a', id), undefined)
    assert.deepEqual(await readdir(t.store.layout.tmp), [])
    assert.equal(t.store.size, 0)
  })

  it('at most maxSessions are open; an abandoned one expires and frees its file', async () => {
    const a = await uploads.start('local/a')
    await uploads.append('local/a', a, Readable.from([Buffer.alloc(1000)]))
    await uploads.start('local/b')
    await assert.rejects(uploads.start('local/c'), (err: OciError) => err.status === 429)
    clock.advance(1001)
    const c = await uploads.start('local/c')
    assert.equal(uploads.size, 1, 'the two idle sessions expired')
    assert.equal(uploads.offset('local/a', a), undefined)
    assert.equal((await readdir(t.store.layout.tmp)).length, 1, "only the new session's file is left")
    await uploads.cancel('local/c', c)
    assert.deepEqual(await readdir(t.store.layout.tmp), [])
  })

  it('an upload that outgrows what CACHE_MAX_SIZE leaves beside kept content gets 507 DENIED, and nothing stored goes', async () => {
    const storeClock = new FakeClock()
    const small = await openTestStore({ policy: { maxSize: 10_000 }, clock: storeClock })
    const bounded = new UploadSessions({ store: small.store, log: silentLog() })
    try {
      const kept = Buffer.alloc(6000, 1)
      await small.store.put(sha256Digest(kept), kept, 'test')
      await small.store.keepUntil(sha256Digest(kept), storeClock.now() + 1000)
      assert.equal(await bounded.room(), 4000)
      const announced = await bounded.start('local/a')
      await assert.rejects(
        bounded.append('local/a', announced, Readable.from([]), { length: 4001 }),
        (err: OciError) => err.status === 507 && err.code === 'DENIED' && /CACHE_MAX_SIZE/.test(err.message)
      )
      assert.equal(bounded.offset('local/a', announced), undefined, 'the session ended')
      const streamed = await bounded.start('local/a')
      await assert.rejects(
        bounded.append('local/a', streamed, Readable.from([Buffer.alloc(3000), Buffer.alloc(3000)])),
        (err: OciError) => err.status === 507
      )
      assert.deepEqual(await readdir(small.store.layout.tmp), [], 'its bytes were dropped')
      assert.ok(await small.store.stat(sha256Digest(kept)) !== undefined, 'the kept blob is still there')
      storeClock.advance(1001)
      assert.equal(await bounded.room(), 10_000, 'once its time is up, kept content no longer counts')
    } finally {
      await bounded.close()
      await small.dispose()
    }
  })
})
