import assert from 'node:assert/strict'
import type { Level } from 'level'
import { TagCache, type TagRecord } from '../../../src/resolver/tag-cache.js'
import { tagKey } from '../../../src/oci/tag-key.js'
import { OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/media-types.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { content } from './setup.js'

const record: TagRecord = { digest: content(10).digest, mediaType: OCI_INDEX, size: 10, resolvedAt: 1_700_000_000_000 }

/** A root whose `put` fails with `err` (a full disk, a broken index). */
function failingRoot (err: Error): Level<string, unknown> {
  return {
    sublevel: () => ({
      put: async () => {
        throw err
      }
    })
  } as unknown as Level<string, unknown>
}

describe('TagCache: the last digest each tag resolved to', () => {
  let t: TestStore
  before(async () => {
    t = await openTestStore()
  })
  after(async () => {
    await t.dispose()
  })

  it('keeps one record per upstream, repository, tag and Accept class', async () => {
    const tags = new TagCache(t.store.db)
    await tags.set('docker.io', 'library/alpine', '3', 'index', record)
    assert.deepEqual(await tags.get('docker.io', 'library/alpine', '3', 'index'), record)
    assert.equal(await tags.get('docker.io', 'library/alpine', '3', 'single'), undefined, 'a client that takes no index must not get one')
    assert.equal(await tags.get('ghcr.io', 'library/alpine', '3', 'index'), undefined)
    assert.equal(await tags.get('docker.io', 'library/alpine', 'latest', 'index'), undefined)
    const newer = { ...record, digest: content(11).digest, mediaType: OCI_MANIFEST }
    await tags.set('docker.io', 'library/alpine', '3', 'index', newer)
    assert.deepEqual(await tags.get('docker.io', 'library/alpine', '3', 'index'), newer, 'a new resolution replaces the old one')
  })

  it('answers a swarm tag key, and nothing for a key that does not parse', async () => {
    const tags = new TagCache(t.store.db)
    await tags.set('ghcr.io', 'org/app', 'v1', 'single', record)
    assert.deepEqual(await tags.lookup(tagKey('ghcr.io', 'org/app', 'v1', 'single')), record)
    assert.equal(await tags.lookup('tag:ghcr.io/org/app:v1#other'), undefined)
    assert.equal(await tags.lookup('tag:not a key'), undefined)
  })

  it('lists the swarm key of every tag it remembers (announced again at start-up)', async () => {
    const tags = new TagCache(t.store.db)
    await tags.set('quay.io', 'a/b', 't1', 'index', record)
    const keys = []
    for await (const k of tags.swarmKeys()) keys.push(k)
    assert.ok(keys.includes(tagKey('quay.io', 'a/b', 't1', 'index')))
    assert.ok(keys.includes(tagKey('ghcr.io', 'org/app', 'v1', 'single')))
    assert.ok(keys.every(k => k.startsWith('tag:')))
  })

  it('on a full disk the resolution is not remembered, and no error reaches the pull', async () => {
    const tags = new TagCache(failingRoot(Object.assign(new Error('IO error: No space left on device'), { code: 'LEVEL_IO_ERROR' })))
    await tags.set('docker.io', 'library/alpine', '3', 'index', record)
  })

  it('any other write error is not hidden', async () => {
    const broken = new Error('Database is not open')
    const tags = new TagCache(failingRoot(broken))
    await assert.rejects(tags.set('docker.io', 'library/alpine', '3', 'index', record), broken)
  })
})
