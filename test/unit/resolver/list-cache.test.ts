import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { ListCache } from '../../../src/resolver/list-cache.js'
import { OciError } from '../../../src/oci/errors.js'
import { UpstreamStatusError, UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import type { RegistryUpstream } from '../../../src/upstream/registry-upstream.js'
import { FakeRegistryUpstream } from '../fakes/registry-upstream.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { silentLog } from '../fakes/log.js'
import { newStats } from './setup.js'

const JSON_ACCEPT = 'application/json'

describe('ListCache: tags/list and referrers, revalidated each time, stale while the upstream is down', () => {
  let t: TestStore
  let up: FakeRegistryUpstream
  beforeEach(async () => {
    t = await openTestStore()
    up = new FakeRegistryUpstream()
    up.addImage('library/alpine', '3')
    up.addImage('library/alpine', '3.20')
  })
  afterEach(async () => {
    await up.close()
    await t.dispose()
  })

  it('a first answer is a MISS and stored; the next is revalidated with If-None-Match (304)', async () => {
    const stats = newStats()
    const lists = new ListCache(t.store.db, { stats, log: silentLog() })
    const path = '/v2/library/alpine/tags/list'
    const first = await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
    assert.equal(first.cache, 'MISS')
    assert.deepEqual(JSON.parse(first.body.toString()), { name: 'library/alpine', tags: ['3', '3.20'] })
    const second = await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
    assert.equal(second.cache, 'REVALIDATED')
    assert.ok(second.body.equals(first.body))
    assert.match(up.requests[1]?.headers['if-none-match'] ?? '', /^"sha256:/)
    assert.equal(stats.snapshot().revalidations_304, 1)
  })

  it('a list that changed upstream replaces the stored one', async () => {
    const lists = new ListCache(t.store.db, { stats: newStats(), log: silentLog() })
    const path = '/v2/library/alpine/tags/list'
    await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
    up.addImage('library/alpine', 'edge')
    const changed = await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
    assert.equal(changed.cache, 'MISS')
    assert.deepEqual((JSON.parse(changed.body.toString()) as { tags: string[] }).tags, ['3', '3.20', 'edge'])
  })

  it('keeps the Link header of a paginated answer', async () => {
    const lists = new ListCache(t.store.db, { stats: newStats(), log: silentLog() })
    const path = '/v2/library/alpine/tags/list?n=1'
    const page = await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
    assert.match(page.link ?? '', /rel="next"/)
    assert.match((await lists.get(up, 'library/alpine', path, JSON_ACCEPT)).link ?? '', /last=3/)
  })

  it('serves the last answer, marked STALE with its date, while the upstream is unavailable (5xx, 429)', async () => {
    const lists = new ListCache(t.store.db, { stats: newStats(), log: silentLog() })
    const path = '/v2/library/alpine/tags/list'
    const fresh = await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
    up.fault(path, { kind: 'status', status: 503 })
    up.fault(path, { kind: 'status', status: 429, retryAfter: '60' })
    for (const _ of [503, 429]) {
      const stale = await lists.get(up, 'library/alpine', path, JSON_ACCEPT)
      assert.equal(stale.cache, 'STALE')
      assert.equal(stale.origin, 'local')
      assert.ok(stale.body.equals(fresh.body))
      assert.equal(typeof stale.storedAt, 'number')
    }
  })

  it('with nothing stored, an unavailable upstream is an error', async () => {
    const lists = new ListCache(t.store.db, { stats: newStats(), log: silentLog() })
    up.fault('/v2/library/alpine/tags/list', { kind: 'connection' })
    await assert.rejects(lists.get(up, 'library/alpine', '/v2/library/alpine/tags/list', JSON_ACCEPT), UpstreamUnavailableError)
  })

  it("the upstream's own error (404) goes to the client as it is, and a stored answer does not hide it", async () => {
    const lists = new ListCache(t.store.db, { stats: newStats(), log: silentLog() })
    await assert.rejects(
      lists.get(up, 'library/nothing', '/v2/library/nothing/tags/list', JSON_ACCEPT),
      (err: unknown) => err instanceof UpstreamStatusError && err.status === 404 && /NAME_UNKNOWN/.test(err.body)
    )
    await lists.get(up, 'library/alpine', '/v2/library/alpine/tags/list', JSON_ACCEPT)
    up.fault('/v2/library/alpine/tags/list', { kind: 'status', status: 401 })
    await assert.rejects(
      lists.get(up, 'library/alpine', '/v2/library/alpine/tags/list', JSON_ACCEPT),
      (err: unknown) => err instanceof UpstreamStatusError && err.status === 401
    )
  })

  it('a list above 4 MiB is refused with a 502 that says so', async () => {
    const lists = new ListCache(t.store.db, { stats: newStats(), log: silentLog() })
    const huge: RegistryUpstream = {
      name: 'huge.example',
      url: new URL('https://huge.example'),
      send: async () => ({
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: Readable.from([Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)])
      }),
      sendOk: async () => {
        throw new Error('not used')
      },
      close: async () => {}
    }
    await assert.rejects(
      lists.get(huge, 'a/b', '/v2/a/b/tags/list', JSON_ACCEPT),
      (err: unknown) => err instanceof OciError && err.status === 502 && /larger than 4194304 bytes/.test(err.message)
    )
  })
})
