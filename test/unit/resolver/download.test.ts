import assert from 'node:assert/strict'
import { FakeClock } from '../fakes/clock.js'
import { CLAIM_LEASE_MS } from '../../../src/p2p/claim/constants.js'
import { MAX_PEER_ATTEMPTS } from '../../../src/p2p/constants.js'
import { DigestMismatchError } from '../../../src/oci/digest.js'
import { GrowingContent } from '../fakes/peer-network.js'
import { content, read, readUntilError, rig, until, type Rig } from './setup.js'

const REPO = 'library/app'
const SIZE = 200_000

describe('BlobDownload: one fetch per digest across the swarm, verified before anything is whole', () => {
  let r: Rig
  afterEach(async () => {
    await r.dispose()
  })

  /** A blob the upstream has, and its path there. */
  function upstreamBlob (size = SIZE, seed?: string): { body: Buffer, digest: `sha256:${string}`, path: string } {
    const { body } = content(size, seed)
    const digest = r.up.addBlob(REPO, body)
    return { body, digest, path: `/v2/${REPO}/blobs/${digest}` }
  }

  /** The stored bytes of `digest` once committed (a reader has its last byte a moment before the commit). */
  async function stored (digest: `sha256:${string}`): Promise<Buffer | undefined> {
    const deadline = Date.now() + 2000
    for (;;) {
      const h = await r.t.store.openRead(digest)
      if (h !== undefined) {
        try {
          return await h.read()
        } finally {
          await h.release()
        }
      }
      if (Date.now() > deadline) return undefined
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  }

  it('the claim names a peer that has it: read from that peer, the upstream is never asked', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const peer = (await r.net.addPeer('holder')).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.cache, 'PEER')
    assert.equal(src.origin, peer.name)
    assert.ok((await read(src)).equals(body))
    assert.equal(r.up.count('GET', path), 0)
    assert.ok((await stored(digest))?.equals(body), 'the right bytes are stored')
    const s = r.stats.snapshot()
    assert.equal(s.claims_joined, 1)
    assert.equal(s.upstream_fetches_saved, 1)
    assert.equal(s.peer_hits, 1)
    assert.equal(s.bytes_from_peers, SIZE)
    assert.equal(r.net.openTransfers, 0)
  })

  it('the claim says fetch: this node goes upstream, and tells the coordinator when it is done', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.cache, 'MISS')
    assert.ok((await read(src)).equals(body))
    assert.equal(r.up.count('GET', path), 1)
    assert.equal(r.stats.snapshot().claims_won, 1)
    await until(() => r.net.claimsOf('done').length === 1, 'done to reach the coordinator')
    assert.equal(r.net.claimsOf('done')[0]?.to, r.net.coordinator)
    assert.ok(r.net.announced.includes(digest))
  })

  it('the lease is renewed with the coordinator while the upstream is slow', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    r.up.fault(path, { kind: 'delay', ms: 60 })
    assert.ok((await read(await r.resolver.open(r.up, REPO, digest))).equals(body))
    assert.ok(r.net.claimsOf('renew').length >= 1, 'renewed at least once')
    assert.ok(r.net.claimsOf('renew').every(c => c.to === r.net.coordinator && c.answer?.status === 'fetch'))
  })

  it('no coordinator answers: providers on the DHT are tried before the upstream', async () => {
    r = await rig()
    r.net.claimMode = { kind: 'silent' }
    const { body, digest, path } = upstreamBlob()
    const peer = (await r.net.addPeer('provider')).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.origin, peer.name)
    assert.ok((await read(src)).equals(body))
    assert.equal(r.up.count('GET', path), 0)
  })

  it('a liar costs a re-fetch: it is deny-listed, the blob comes from elsewhere, nothing wrong is stored', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const liar = (await r.net.addPeer('liar', { kind: 'liar', at: 1234 })).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    const got = await readUntilError(src)
    // Either cut (it had bytes of the wrong copy: its client retries) or served whole from the right copy.
    if (got.error !== undefined) assert.match(got.error.message, /did not verify.*retry the request/)
    else assert.equal(got.bytes, SIZE)
    assert.ok((await stored(digest))?.equals(body), 'the right bytes are stored')
    assert.match(r.net.denied.get(liar.name) ?? '', /does not match/)
    assert.deepEqual(r.net.claims[1]?.request.failed, [liar.name], 'the next claim reports the liar')
    assert.equal(r.up.count('GET', path), 1)
    assert.ok((await read(await r.resolver.open(r.up, REPO, digest))).equals(body))
  })

  it('a liar among providers is skipped for the next honest peer; the liar alone is blamed', async () => {
    r = await rig()
    r.net.claimMode = { kind: 'silent' }
    const { body, digest, path } = upstreamBlob()
    const liar = (await r.net.addPeer('liar', { kind: 'liar' })).holdBlob(digest, body)
    const honest = (await r.net.addPeer('honest')).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    await readUntilError(src)
    await until(() => r.net.fetchCounts().honest === 1, 'the honest peer to be asked')
    assert.ok((await read(await r.resolver.open(r.up, REPO, digest))).equals(body))
    assert.ok((await stored(digest))?.equals(body), 'the right bytes are stored')
    assert.ok(r.net.isDenied(liar.name))
    assert.equal(r.net.isDenied(honest.name), false)
    assert.equal(r.up.count('GET', path), 0)
  })

  it('the upstream drops mid-blob: the rest is asked for with a Range, the client sees one whole transfer', async () => {
    r = await rig({ p2p: false })
    const { body, digest, path } = upstreamBlob()
    r.up.fault(path, { kind: 'drop', afterBytes: 50_000 })
    assert.ok((await read(await r.resolver.open(r.up, REPO, digest))).equals(body))
    const gets = r.up.requests.filter(q => q.path === path)
    assert.equal(gets.length, 2)
    assert.equal(gets[0]?.headers.range, undefined)
    assert.equal(gets[1]?.headers.range, 'bytes=50000-')
    assert.equal(r.up.bytesSent, SIZE, 'no byte fetched twice')
  })

  it('the named peer drops mid-blob: the rest comes from the upstream with a Range', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const peer = (await r.net.addPeer('flaky', { kind: 'truncate', after: 60_000 })).holdBlob(digest, body)
    assert.ok((await read(await r.resolver.open(r.up, REPO, digest))).equals(body))
    assert.equal(r.up.requests.find(q => q.path === path)?.headers.range, 'bytes=60000-')
    assert.deepEqual(r.net.claims[1]?.request.failed, [peer.name])
    assert.equal(r.net.isDenied(peer.name), false, 'a dropped transfer is no lie')
    assert.ok((await stored(digest))?.equals(body), 'the right bytes are stored')
  })

  it("the claim says join a peer still downloading it: the bytes follow that peer's download", async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const growing = new GrowingContent(body)
    const holder = (await r.net.addPeer('holder')).holdBlob(digest, growing)
    assert.equal(r.net.holdClaim(holder, digest).status, 'fetch')
    growing.release(30_000)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.origin, holder.name)
    const reading = read(src)
    for (let i = 0; i < 10; i++) growing.release(20_000)
    growing.finish()
    assert.ok((await reading).equals(body))
    assert.equal(r.net.claims[0]?.answer?.status, 'join')
    assert.equal(r.stats.snapshot().peer_inflight_joins, 1)
    assert.equal(r.up.count('GET', path), 0)
  })

  it('a holder that stalls is reported failed, and the coordinator hands the fetch to this node', async () => {
    r = await rig({ idleMs: 30 })
    const { body, digest, path } = upstreamBlob()
    const stuck = (await r.net.addPeer('stuck', { kind: 'stall' })).holdBlob(digest, body)
    const started = Date.now()
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.cache, 'MISS')
    assert.ok((await read(src)).equals(body))
    assert.ok(Date.now() - started < 2000)
    assert.deepEqual(r.net.claims.map(c => c.answer?.status).slice(0, 2), ['join', 'fetch'])
    assert.deepEqual(r.net.claims[1]?.request.failed, [stuck.name])
    assert.equal(r.up.count('GET', path), 1)
  })

  it('a fetching holder a joiner cannot reach, but whose lease runs, is waited for: no takeover, no second upstream fetch (issue 23)', async () => {
    const clock = new FakeClock()
    r = await rig({ idleMs: 30, now: () => clock.now() })
    const { body, digest, path } = upstreamBlob()
    const holder = (await r.net.addPeer('loaded', { kind: 'dead' })).holdBlob(digest, body)
    r.net.holdClaim(holder, digest)
    const opening = r.resolver.open(r.up, REPO, digest)
    // The joiner reports it failed; its lease runs, so the coordinator names it again.
    await until(
      () => r.net.claims.filter(c => c.request.failed?.includes(holder.name) === true).length >= 2,
      'two reports the coordinator did not believe'
    )
    assert.ok(r.net.claims.every(c => c.answer?.status === 'join'), "never a lease while the holder's runs")
    holder.behave({ kind: 'honest' })
    const src = await opening
    assert.equal(src.origin, holder.name)
    assert.ok((await read(src)).equals(body))
    assert.equal(r.up.count('GET', path), 0)
    assert.ok(
      r.net.claims.every(c => (c.request.failed?.length ?? 0) <= 1),
      'a holder is reported once per claim, however often it is named'
    )
  })

  it('a fetching holder whose lease lapsed (it stopped renewing) is taken over', async () => {
    const clock = new FakeClock()
    r = await rig({ idleMs: 30, now: () => clock.now() })
    const { body, digest, path } = upstreamBlob()
    const holder = (await r.net.addPeer('gone', { kind: 'dead' })).holdBlob(digest, body)
    r.net.holdClaim(holder, digest)
    clock.advance(CLAIM_LEASE_MS)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.cache, 'MISS')
    assert.ok((await read(src)).equals(body))
    assert.deepEqual(r.net.claims.map(c => c.answer?.status).slice(0, 2), ['join', 'fetch'])
    assert.equal(r.up.count('GET', path), 1)
  })

  it('a named peer that is busy is asked again after a pause rather than fetching twice upstream', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const peer = (await r.net.addPeer('busy', { kind: 'busy', times: 2 })).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.origin, peer.name)
    assert.ok((await read(src)).equals(body))
    assert.equal(peer.fetches, 3)
    assert.equal(r.up.count('GET', path), 0)
  })

  it('a named peer that stays busy sends the reader to another holder; it is never reported failed, nothing goes upstream', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const busy = (await r.net.addPeer('busy', { kind: 'busy' })).holdBlob(digest, body)
    const other = (await r.net.addPeer('other')).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.origin, other.name)
    assert.ok((await read(src)).equals(body))
    assert.equal(busy.fetches, 1)
    assert.deepEqual(r.net.claims.map(c => c.request.failed), [undefined])
    assert.equal(r.up.count('GET', path), 0)
    assert.equal(r.stats.snapshot().peer_busy_answers, 1)
  })

  it('a named peer busy many times with no other holder is waited for, not taken over (issue 23: busy is no failure)', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const peer = (await r.net.addPeer('busy', { kind: 'busy', times: 8 })).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.origin, peer.name)
    assert.ok((await read(src)).equals(body))
    assert.equal(peer.fetches, 9)
    assert.equal(r.net.claims.filter(c => c.request.op === 'claim').length, 1)
    assert.equal(r.up.count('GET', path), 0)
    assert.equal(r.stats.snapshot().peer_busy_answers, 8)
  })

  it('a holder whose transfers keep breaking off after some bytes is asked again for as long as each one brings bytes: no upstream fetch without a lease', async () => {
    r = await rig()
    const { body, digest, path } = upstreamBlob()
    const peer = (await r.net.addPeer('flaky', { kind: 'truncate', after: 30_000 })).holdBlob(digest, body)
    r.net.claimMode = {
      kind: 'custom',
      answer: req => req.op === 'claim' ? { status: 'join', peer: peer.name, addrs: [], committed: true } : { status: 'ok' }
    }
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.ok((await read(src)).equals(body))
    assert.ok(
      r.net.claims.filter(c => c.request.op === 'claim').length > MAX_PEER_ATTEMPTS + 1,
      'more rounds than MAX_PEER_ATTEMPTS, each with bytes'
    )
    assert.equal(r.up.count('GET', path), 0)
  })

  it('the upstream is unreachable: a provider that has it serves the miss', async () => {
    r = await rig()
    r.net.claimMode = {
      kind: 'custom',
      answer: req => req.op === 'claim' || req.op === 'renew' ? { status: 'fetch', leaseMs: 1000 } : { status: 'ok' }
    }
    const { body, digest, path } = upstreamBlob()
    r.up.fault(path, { kind: 'connection' })
    const peer = (await r.net.addPeer('provider')).holdBlob(digest, body)
    const src = await r.resolver.open(r.up, REPO, digest)
    assert.equal(src.origin, peer.name)
    assert.ok((await read(src)).equals(body))
  })

  it('the last byte is held back until the digest verified: wrong upstream bytes never reach a client whole', async () => {
    r = await rig({ p2p: false })
    const { body, digest, path } = upstreamBlob()
    r.up.fault(path, { kind: 'corrupt' })
    const got = await readUntilError(await r.resolver.open(r.up, REPO, digest))
    assert.ok(got.error instanceof DigestMismatchError, `got ${String(got.error)}`)
    assert.ok(got.bytes < SIZE, `the client got ${got.bytes} of ${SIZE} bytes`)
    assert.equal(await r.resolver.stored(digest), false)
    // The next request fetches it again, and it is right this time.
    assert.ok((await read(await r.resolver.open(r.up, REPO, digest))).equals(body))
    assert.equal(r.up.count('GET', path), 2)
  })
})
