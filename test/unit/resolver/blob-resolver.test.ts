import assert from 'node:assert/strict'
import { UpstreamStatusError } from '../../../src/upstream/errors.js'
import { GrowingContent } from '../fakes/peer-network.js'
import { content, read, rig, until, type Rig } from './setup.js'

const REPO = 'library/app'
const SIZE = 200_000

describe('BlobResolver: local store, then the swarm, then the upstream', () => {
  let r: Rig
  afterEach(async () => {
    await r.dispose()
  })

  it('a miss is fetched from the upstream once for concurrent readers, then is a local hit', async () => {
    r = await rig({ p2p: false })
    const { body } = content(SIZE)
    const digest = r.up.addBlob(REPO, body)
    const sources = await Promise.all([1, 2, 3].map(async () => await r.resolver.open(r.up, REPO, digest)))
    assert.deepEqual(sources.map(s => s.cache), ['MISS', 'MISS', 'MISS'])
    assert.deepEqual(sources.map(s => s.size), [SIZE, SIZE, SIZE])
    const bodies = await Promise.all(sources.map(async s => await read(s)))
    for (const b of bodies) assert.ok(b.equals(body))
    assert.equal(r.up.count('GET', `/v2/${REPO}/blobs/${digest}`), 1)
    const hit = await r.resolver.open(r.up, REPO, digest)
    assert.equal(hit.cache, 'HIT')
    assert.equal(hit.origin, 'local')
    assert.ok((await read(hit, 10, 20)).equals(body.subarray(10, 20)), 'a range of the stored blob, end exclusive')
    assert.equal(r.up.count('GET', `/v2/${REPO}/blobs/${digest}`), 1)
    const s = r.stats.snapshot()
    assert.equal(s.misses, 3)
    assert.equal(s.hits, 1)
    assert.equal(s.upstream_hits, 1)
  })

  it('a stored blob is served without asking the upstream or the swarm', async () => {
    r = await rig()
    const { body, digest } = content(1000)
    const stored = await r.t.store.put(digest, body, 'test')
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.cache, 'HIT')
    assert.equal(src.storedAt, stored.createdAt, 'when it was stored, for X-Cache-Date')
    assert.ok((await read(src)).equals(body))
    assert.equal(r.up.requests.length, 0)
    assert.equal(r.net.claims.length, 0)
    assert.deepEqual(await r.resolver.head(r.up, REPO, digest), { cache: 'HIT', origin: 'local', size: 1000, storedAt: stored.createdAt })
  })

  it("the upstream's 404 is passed on, nothing is stored, and the swarm stops announcing it", async () => {
    r = await rig()
    const { digest } = content(10, 'missing')
    r.up.addBlob(REPO, 'something else')
    await assert.rejects(
      r.resolver.open(r.up, REPO, digest),
      (err: unknown) => err instanceof UpstreamStatusError && err.status === 404 && /BLOB_UNKNOWN/.test(err.body)
    )
    assert.equal(await r.resolver.stored(digest), false)
    assert.ok(r.net.forgotten.includes(digest))
    await until(() => r.net.claimsOf('release').length === 1, 'the lease to be released')
  })

  it("HEAD: from a peer's header without fetching the bytes, else from the upstream", async () => {
    r = await rig()
    const { body } = content(5000)
    const digest = r.up.addBlob(REPO, body)
    const peer = (await r.net.addPeer('p')).holdBlob(digest, body)
    assert.deepEqual(await r.resolver.head(r.up, REPO, digest), { cache: 'PEER', origin: peer.name, size: 5000 })
    assert.deepEqual(peer.requests, [{ key: digest, start: 0, end: 0 }])
    assert.equal(await r.resolver.stored(digest), false, 'a HEAD stores nothing')
    peer.behave({ kind: 'dead' })
    assert.deepEqual(await r.resolver.head(r.up, REPO, digest), { cache: 'MISS', origin: 'docker.io', size: 5000 })
    assert.equal(r.up.count('HEAD', `/v2/${REPO}/blobs/${digest}`), 1)
  })

  it('a client that leaves stops its share; when the last one leaves the upstream request is stopped', async () => {
    r = await rig()
    const { body } = content(SIZE)
    const digest = r.up.addBlob(REPO, body)
    r.up.fault(`/v2/${REPO}/blobs/${digest}`, { kind: 'stall', afterBytes: 50_000 })
    const a = new AbortController()
    const b = new AbortController()
    const first = await r.resolver.open(r.up, REPO, digest, { signal: a.signal })
    const second = await r.resolver.open(r.up, REPO, digest, { signal: b.signal })
    await until(() => r.up.bytesSent >= 50_000, 'the first bytes')
    a.abort()
    await first.release()
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(r.up.open, 1, 'the other client still reads it')
    b.abort()
    await second.release()
    await until(() => r.up.open === 0, 'the upstream body to be destroyed')
    await until(() => r.net.claimsOf('release').length === 1, 'the lease to be released')
    assert.equal(await r.resolver.stored(digest), false)
    assert.ok(r.net.forgotten.includes(digest))
  })

  it('a download from the upstream is served to peers while it arrives (inProgress)', async () => {
    r = await rig()
    const { body } = content(SIZE)
    const digest = r.up.addBlob(REPO, body)
    r.up.fault(`/v2/${REPO}/blobs/${digest}`, { kind: 'stall', afterBytes: 50_000 })
    assert.equal(
      await r.resolver.inProgress(digest, { signal: AbortSignal.timeout(50) }),
      undefined,
      'no download, no answer: a peer request never starts one'
    )
    const client = new AbortController()
    const own = await r.resolver.open(r.up, REPO, digest, { signal: client.signal })
    await until(() => r.up.bytesSent >= 50_000, 'the first bytes')
    // Sent by the upstream is not yet written here: the announcement follows the first write.
    await until(() => r.net.announced.includes(digest), 'announced while it arrives')
    const forPeer = await r.resolver.inProgress(digest, { signal: AbortSignal.timeout(500) })
    assert.ok(forPeer !== undefined && forPeer !== 'pending')
    assert.equal(forPeer.size, SIZE)
    // Bytes 0-998 come at once; the span's last byte waits until the whole blob verified.
    const stream = forPeer.stream(0, 1000)
    const got: Buffer[] = []
    stream.on('data', (c: Buffer) => {
      got.push(c)
    })
    await until(() => Buffer.concat(got).byteLength === 999, 'all but the last byte of the span')
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.ok(Buffer.concat(got).equals(body.subarray(0, 999)), 'byte 999 is held back')
    stream.destroy()
    await forPeer.release()
    client.abort()
    await own.release()
  })

  it('a peer asking before the upstream answered is told to wait (pending)', async () => {
    r = await rig()
    const { body } = content(1000)
    const digest = r.up.addBlob(REPO, body)
    let answer!: () => void
    r.up.fault(`/v2/${REPO}/blobs/${digest}`, {
      kind: 'delay',
      ms: new Promise<void>(resolve => {
        answer = resolve
      })
    })
    const opening = r.resolver.open(r.up, REPO, digest)
    await until(() => r.up.requests.length === 1, 'the upstream request')
    assert.equal(await r.resolver.inProgress(digest, { signal: AbortSignal.timeout(20) }), 'pending')
    answer()
    assert.ok((await read(await opening)).equals(body))
  })

  it('a download that reads from a peer is not offered to other peers until it verified', async () => {
    r = await rig()
    const { body, digest } = content(SIZE)
    const growing = new GrowingContent(body)
    const holder = (await r.net.addPeer('holder')).holdBlob(digest, growing)
    r.net.holdClaim(holder, digest)
    growing.release(100_000)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.cache, 'PEER')
    assert.equal(await r.resolver.inProgress(digest, { signal: AbortSignal.timeout(50) }), undefined)
    const reading = read(src)
    growing.release()
    growing.finish()
    assert.ok((await reading).equals(body))
  })
})
