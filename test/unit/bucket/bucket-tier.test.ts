import assert from 'node:assert/strict'
import { BucketTier } from '../../../src/bucket/bucket-tier.js'
import { BucketWriter } from '../../../src/bucket/bucket-writer.js'
import { blobObjectKey, recordObjectKey, UPSTREAM_TAG_KIND } from '../../../src/bucket/object-keys.js'
import { parseBucketUrl } from '../../../src/bucket/bucket-url.js'
import { ManifestResolver } from '../../../src/resolver/manifest-resolver.js'
import { TagCache } from '../../../src/resolver/tag-cache.js'
import { SwarmRecords } from '../../../src/records/swarm-records.js'
import { localTagKind } from '../../../src/push/local-registry.js'
import { OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/media-types.js'
import type { Stats } from '../../../src/metrics/stats.js'
import type { Digest } from '../../../src/oci/digest.js'
import type { BlobRecord } from '../../../src/store/record.js'
import { FakeBucket } from '../fakes/bucket.js'
import { silentLog } from '../fakes/log.js'
import { content, newStats, read, rig, until, type Rig } from '../resolver/setup.js'

const REPO = 'library/alpine'

function tier (
  bucket: FakeBucket,
  stats: Stats,
  store: ConstructorParameters<typeof BucketWriter>[0]['store'],
  opts: { readTimeoutMs?: number, downMs?: number } = {}
): { tier: BucketTier, writer: BucketWriter } {
  const writer = new BucketWriter({ bucket, store, stats, log: silentLog(), retryFirstMs: 1, attempts: 3 })
  return {
    writer,
    tier: new BucketTier({
      bucket,
      writer,
      stats,
      log: silentLog(),
      readTimeoutMs: opts.readTimeoutMs ?? 100,
      downMs: opts.downMs ?? 60_000
    })
  }
}

/** The store's record of `digest` once the download committed it (it commits after its readers had the last byte). */
async function committed (r: Rig, digest: Digest): Promise<BlobRecord> {
  for (let i = 0; i < 1000; i++) {
    const record = await r.t.store.stat(digest)
    if (record !== undefined) return record
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  throw new Error(`${digest} was never committed`)
}

describe('bucket URL: CACHE_S3_URL', () => {
  it('takes s3://bucket and s3://bucket/prefix, and refuses what S3 would', () => {
    assert.deepEqual(parseBucketUrl('s3://ci-cache'), { bucket: 'ci-cache', prefix: '' })
    assert.deepEqual(parseBucketUrl('s3://ci-cache/runners/p2p/'), { bucket: 'ci-cache', prefix: 'runners/p2p/' })
    for (const bad of [
      'ci-cache',
      'http://ci-cache/x',
      's3://CI',
      's3://ab',
      's3://a..b/x',
      's3://ci-cache//x',
      's3://ci-cache/a/../b',
      's3://192.168.1.1/x',
      's3://ci-cache/a\\b'
    ]) {
      assert.equal(parseBucketUrl(bad), undefined, bad)
    }
  })
})

describe('bucket tier: the second tier between the swarm and the upstream (issue 27)', () => {
  let r: Rig
  let bucket: FakeBucket
  let t: { tier: BucketTier, writer: BucketWriter }

  async function setup (opts: { p2p?: boolean, readTimeoutMs?: number } = {}): Promise<void> {
    bucket = new FakeBucket()
    const stats = newStats()
    // The tier needs the rig's store, which the rig makes: a late-bound store for the writer.
    let store: Rig['t']['store'] | undefined
    t = tier(bucket, stats, { openRead: async d => await store?.openRead(d) }, opts)
    r = await rig({ p2p: opts.p2p ?? false, bucket: t.tier })
    store = r.t.store
    ;(r as { stats: Stats }).stats = stats
  }

  afterEach(async () => {
    await t.writer.drain(0)
    await r.dispose()
  })

  it('a blob the bucket has is served from it, verified, and not fetched upstream', async () => {
    await setup()
    const { body, digest } = content(300_000)
    bucket.set(blobObjectKey(digest), body)
    const source = await r.resolver.open(r.up, REPO, digest)
    assert.equal(source.origin, 's3')
    assert.equal(source.cache, 'MISS')
    assert.deepEqual(await read(source), body)
    assert.equal(r.up.requests.length, 0)
    assert.equal(t.tier.name, 's3://fake/cache/')
    await committed(r, digest)
    assert.equal(bucket.puts(blobObjectKey(digest)), 0, 'what came from the bucket is not written back')
  })

  it('a miss goes upstream, then the blob is uploaded once (HEAD first); a second node finds it there', async () => {
    await setup()
    const digest = r.up.addBlob(REPO, content(200_000).body)
    assert.equal((await read(await r.resolver.open(r.up, REPO, digest))).byteLength, 200_000)
    await until(() => bucket.puts(blobObjectKey(digest)) === 1 && t.writer.depth === 0, 'the upload')
    assert.deepEqual(bucket.requests.filter(q => q.endsWith(blobObjectKey(digest))), [
      `GET ${blobObjectKey(digest)}`,
      `HEAD ${blobObjectKey(digest)}`,
      `PUT ${blobObjectKey(digest)}`
    ])
    // Queued twice, written once.
    t.tier.uploadBlob(digest)
    await until(() => t.writer.depth === 0, 'the second upload')
    assert.equal(bucket.puts(blobObjectKey(digest)), 1)
    assert.equal(r.stats.snapshot().s3_uploads, 1)
    assert.equal(r.stats.snapshot().s3_bytes_written, 200_000)
  })

  it('a corrupted object is reported and skipped: the upstream serves it, and the bucket copy is written over', async () => {
    await setup()
    const { body } = content(100_000, 'corrupt')
    const digest = r.up.addBlob(REPO, body)
    const bad = Buffer.from(body)
    bad[5] = (bad[5] ?? 0) ^ 0xff
    bucket.set(blobObjectKey(digest), bad)
    // A reader may be cut when the bucket's bytes fail; a retry gets the upstream's.
    const first = await r.resolver.open(r.up, REPO, digest)
    await read(first).catch(() => undefined)
    const again = await r.resolver.open(r.up, REPO, digest)
    assert.deepEqual(await read(again), body)
    assert.equal(r.stats.snapshot().s3_bad_objects, 1)
    await until(() => bucket.objects.get(blobObjectKey(digest))?.body.equals(body) === true, 'the bucket copy written over')
  })

  it('a bucket that does not answer costs one CACHE_S3_TIMEOUT, then is skipped while it is down', async () => {
    await setup({ readTimeoutMs: 50 })
    bucket.hang = true
    const a = r.up.addBlob(REPO, 'a'.repeat(1000))
    const b = r.up.addBlob(REPO, 'b'.repeat(1000))
    let started = performance.now()
    assert.equal((await read(await r.resolver.open(r.up, REPO, a))).byteLength, 1000)
    assert.ok(performance.now() - started < 2_000)
    started = performance.now()
    assert.equal((await read(await r.resolver.open(r.up, REPO, b))).byteLength, 1000)
    assert.equal(bucket.requests.filter(q => q.startsWith('GET')).length, 1, 'the second read skipped the bucket')
    assert.equal(r.stats.snapshot().s3_errors >= 1, true)
    assert.equal(t.tier.isDown(), true)
  })

  it('a body that stalls mid-way is given up for the upstream', async () => {
    await setup({ readTimeoutMs: 50 })
    const { body } = content(50_000, 'stall')
    const digest = r.up.addBlob(REPO, body)
    bucket.set(blobObjectKey(digest), body)
    bucket.stallAfter = 1000
    const source = await r.resolver.open(r.up, REPO, digest)
    const got = await read(source).catch(() => undefined)
    const bytes = got ?? await read(await r.resolver.open(r.up, REPO, digest))
    assert.deepEqual(bytes, body)
    assert.equal(r.up.count('GET', `/v2/${REPO}/blobs/${digest}`), 1)
  })

  it('a manifest keeps the media type the object states when its body agrees', async () => {
    await setup()
    const img = r.up.addImage(REPO, undefined)
    bucket.set(blobObjectKey(img.digest), img.manifest, OCI_INDEX)
    // The body declares an image manifest: the stated index type is not taken.
    const source = await r.resolver.open(r.up, REPO, img.digest, { kind: 'manifest' })
    await read(source)
    assert.equal((await committed(r, img.digest)).mediaType, OCI_MANIFEST)
  })

  it('uploads that keep failing are retried, then dropped and counted', async () => {
    await setup()
    const digest = r.up.addBlob(REPO, 'x'.repeat(500))
    bucket.down = true
    await read(await r.resolver.open(r.up, REPO, digest))
    await until(() => r.stats.snapshot().s3_uploads_dropped === 1, 'the upload given up')
    assert.equal(t.writer.depth, 0)
    assert.equal(bucket.requests.filter(q => q.startsWith('HEAD')).length, 3, 'three tries')
    assert.equal(bucket.objects.size, 0)
  })

  it('the upload queue is bounded: what overflows is dropped and counted', async () => {
    bucket = new FakeBucket()
    bucket.hang = true
    const stats = newStats()
    const writer = new BucketWriter({
      bucket,
      store: { openRead: async () => undefined },
      stats,
      log: silentLog(),
      concurrency: 1,
      queueMax: 3
    })
    for (let i = 0; i < 5; i++) writer.blob(content(10, `q${i}`).digest)
    assert.equal(writer.depth, 3)
    assert.equal(stats.snapshot().s3_uploads_dropped, 2)
    await writer.drain(10)
    assert.equal(writer.depth, 0)
    r = await rig({ p2p: false })
    t = { writer, tier: new BucketTier({ bucket, writer, stats, log: silentLog(), readTimeoutMs: 10 }) }
  })
})

describe('bucket tier: tags and records outlive the fleet', () => {
  let r: Rig
  let bucket: FakeBucket
  let t: { tier: BucketTier, writer: BucketWriter }
  afterEach(async () => {
    await t.writer.drain(0)
    await r.dispose()
  })

  it('a resolved tag is written once; with the upstream down and no peer, a fresh node reads it back', async () => {
    bucket = new FakeBucket()
    r = await rig({ p2p: false })
    t = tier(bucket, r.stats, r.t.store)
    const manifests = new ManifestResolver({
      tags: new TagCache(r.t.store.db),
      stats: r.stats,
      log: silentLog(),
      blobs: r.resolver,
      bucket: t.tier
    })
    const img = r.up.addImage(REPO, '3')
    await manifests.resolveTag(r.up, REPO, '3', [OCI_MANIFEST])
    await manifests.resolveTag(r.up, REPO, '3', [OCI_MANIFEST])
    const key = recordObjectKey(UPSTREAM_TAG_KIND, `docker.io/${REPO}:3#single`)
    await until(() => bucket.puts(key) === 1 && t.writer.depth === 0, 'the tag record')
    assert.equal(bucket.objects.get(key)?.metadata.digest, img.digest)
    // A fresh node: an empty index, and the upstream down.
    const fresh = await rig({ p2p: false })
    try {
      const fm = new ManifestResolver({
        tags: new TagCache(fresh.t.store.db),
        stats: fresh.stats,
        log: silentLog(),
        blobs: fresh.resolver,
        bucket: t.tier
      })
      fresh.up.fault(`/v2/${REPO}/manifests/3`, { kind: 'connection', times: Infinity })
      const resolved = await fm.resolveTag(fresh.up, REPO, '3', [OCI_MANIFEST])
      assert.equal(resolved.digest, img.digest)
      assert.equal(resolved.peer, 's3')
      assert.ok(resolved.staleSince !== undefined)
    } finally {
      await fresh.dispose()
    }
  })

  it('a record written by one node is found by a node with no peers, and listed with its group', async () => {
    bucket = new FakeBucket()
    r = await rig({ p2p: false })
    t = tier(bucket, r.stats, r.t.store)
    const a = new SwarmRecords({ db: r.t.store.db, bucket: t.tier, log: silentLog() }).define(localTagKind(true))
    const value = { digest: content(10).digest, mediaType: OCI_MANIFEST, size: 10, pushedAt: 1, writer: 'a' }
    await a.put('local/app:v1', value)
    await a.put('local/app:old', { ...value, deleted: true as const })
    await until(() => t.writer.depth === 0 && bucket.objects.size === 2, 'the records')
    const fresh = await rig({ p2p: false })
    try {
      const b = new SwarmRecords({ db: fresh.t.store.db, bucket: t.tier, log: silentLog() }).define(localTagKind(true))
      assert.deepEqual((await b.find('local/app:v1'))?.value, value)
      assert.equal(await b.find('local/app:v2'), undefined)
      assert.deepEqual(await b.names('local/app', 10), ['local/app:v1'])
    } finally {
      await fresh.dispose()
    }
  })
})

describe('bucket writer: order and deadlines', () => {
  it('a record waits for the blobs it points at, and the newest value of a record wins', async () => {
    const bucket = new FakeBucket()
    const stats = newStats()
    const r = await rig({ p2p: false })
    try {
      const { body, digest } = content(50_000, 'ordered')
      await r.t.store.put(digest, body, 'test')
      let release!: () => void
      const gate = new Promise<void>(resolve => {
        release = resolve
      })
      const slow = Object.assign(Object.create(bucket) as FakeBucket, {
        put: async (key: string, b: Buffer | NodeJS.ReadableStream, o: object) => {
          if (key === blobObjectKey(digest)) await gate
          return await bucket.put(key, b as Buffer, o)
        }
      })
      const writer = new BucketWriter({ bucket: slow, store: r.t.store, stats, log: silentLog() })
      writer.blob(digest)
      writer.record('records/push-tag/x', { v: 1 }, { after: [digest] })
      writer.record('records/push-tag/x', { v: 2 }, { after: [digest] })
      await new Promise(resolve => setTimeout(resolve, 20))
      assert.equal(bucket.objects.has('records/push-tag/x'), false, 'the record waits for its blob')
      release()
      await until(() => writer.depth === 0, 'the writes')
      assert.deepEqual(bucket.requests.filter(q => q.startsWith('PUT')), [`PUT ${blobObjectKey(digest)}`, 'PUT records/push-tag/x'])
      assert.deepEqual(JSON.parse(bucket.objects.get('records/push-tag/x')?.body.toString() ?? ''), { v: 2 })
    } finally {
      await r.dispose()
    }
  })

  it('a bucket that hangs frees the upload slot at the request deadline', async () => {
    const bucket = new FakeBucket()
    bucket.hang = true
    const stats = newStats()
    const writer = new BucketWriter({
      bucket,
      store: { openRead: async () => undefined },
      stats,
      log: silentLog(),
      requestTimeoutMs: 20,
      attempts: 1,
      concurrency: 1
    })
    writer.blob(content(10, 'hang').digest)
    await until(() => writer.depth === 0, 'the hung upload given up')
    assert.equal(stats.snapshot().s3_uploads_dropped, 1)
  })
})
