import assert from 'node:assert/strict'
import { ReplicaKeeper } from '../../../src/push/replica-keeper.js'
import { SwarmRecords } from '../../../src/records/swarm-records.js'
import { localTagKind } from '../../../src/push/local-registry.js'
import { recordKey } from '../../../src/keys/record-key.js'
import { sha256Digest, type Digest } from '../../../src/oci/digest.js'
import type { RecordKey } from '../../../src/keys/record-key.js'
import { FakePeerNetwork } from '../fakes/peer-network.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { silentLog } from '../fakes/log.js'
import { newStats, peerInit } from '../resolver/setup.js'

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'

describe('replica keeper: holds what a pusher asks, verified, kept against eviction, announced before it answers', () => {
  let t: TestStore
  let net: FakePeerNetwork
  let provided: Array<Digest | RecordKey>

  beforeEach(async () => {
    t = await openTestStore({ policy: { maxSize: 1_000_000 } })
    net = await FakePeerNetwork.create()
    provided = []
  })

  afterEach(async () => {
    await t.dispose()
  })

  const keeper = (): ReplicaKeeper => new ReplicaKeeper({
    store: t.store,
    records: (() => {
      const r = new SwarmRecords({ db: t.store.db, peers: peerInit(net), log: silentLog() })
      r.define(localTagKind(true))
      return r
    })(),
    peers: peerInit(net),
    provideNow: async keys => {
      provided.push(...keys)
    },
    ttlMs: 60_000,
    stats: newStats(),
    log: silentLog(),
    now: () => t.clock.now()
  })

  it('fetches what it lacks from the pusher, keeps blob, manifest (typed) and tag, and announces them', async () => {
    const layer = Buffer.alloc(10_000, 7)
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, layers: [] }))
    const pusher = (await net.addPeer('pusher')).holdBlob(sha256Digest(layer), layer).holdBlob(
      sha256Digest(manifest),
      manifest,
      MANIFEST_TYPE
    )
    const tag = { digest: sha256Digest(manifest), mediaType: MANIFEST_TYPE, size: manifest.byteLength, pushedAt: 1, writer: 'w' }
    const key = recordKey('push-tag', 'local/app:1')
    const answer = await keeper().hold(
      {
        keys: [{ digest: sha256Digest(layer) }, { digest: sha256Digest(manifest), mediaType: MANIFEST_TYPE }],
        records: [{ key, value: JSON.stringify(tag) }],
        keepUntil: t.clock.now() + 10 * 60_000
      },
      pusher.ref,
      { signal: AbortSignal.timeout(5_000) }
    )
    assert.deepEqual(answer, { status: 'held' })
    assert.ok(
      ((await t.store.stat(sha256Digest(layer)))?.keepUntil ?? 0) <= t.clock.now() + 60_000,
      'kept at most CACHE_LOCAL_TTL, whatever the pusher asked'
    )
    assert.equal((await t.store.stat(sha256Digest(manifest)))?.mediaType, MANIFEST_TYPE)
    assert.deepEqual(
      new Set(provided),
      new Set([sha256Digest(layer), sha256Digest(manifest), key, recordKey('list', 'push-tag/local/app')]),
      "the tag's listing too: tags/list finds this node"
    )
    const before = pusher.fetches
    assert.deepEqual(
      await keeper().hold({ keys: [{ digest: sha256Digest(layer) }], keepUntil: 1 }, pusher.ref, { signal: AbortSignal.timeout(5_000) }),
      { status: 'held' }
    )
    assert.equal(pusher.fetches, before, 'what it has is not fetched again')
  })

  it('a pusher that lies gets `failed` and nothing is stored; content that would not fit beside kept content is `refused`', async () => {
    const layer = Buffer.alloc(10_000, 9)
    const liar = (await net.addPeer('liar', { kind: 'liar' })).holdBlob(sha256Digest(layer), layer)
    const lied = await keeper().hold(
      { keys: [{ digest: sha256Digest(layer) }], keepUntil: t.clock.now() + 1000 },
      liar.ref,
      { signal: AbortSignal.timeout(5_000) }
    )
    assert.equal(lied.status, 'failed')
    assert.equal(await t.store.stat(sha256Digest(layer)), undefined)

    const kept = Buffer.alloc(995_000, 1)
    await t.store.put(sha256Digest(kept), kept, 'test')
    await t.store.keepUntil(sha256Digest(kept), t.clock.now() + 1000)
    const honest = (await net.addPeer('honest')).holdBlob(sha256Digest(layer), layer)
    const full = await keeper().hold(
      { keys: [{ digest: sha256Digest(layer) }], keepUntil: t.clock.now() + 1000 },
      honest.ref,
      { signal: AbortSignal.timeout(5_000) }
    )
    assert.equal(full.status, 'refused')
    assert.equal(await t.store.stat(sha256Digest(layer)), undefined)
  })
})
