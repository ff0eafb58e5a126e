import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import { PIECE_SIZE } from '../../../src/p2p/constants.js'
import type { Stats } from '../../../src/metrics/stats.js'
import type { Digest } from '../../../src/oci/digest.js'
import { BlobDownload } from '../../../src/resolver/download.js'
import { FakeRegistryUpstream } from '../fakes/registry-upstream.js'
import { FakePeerNetwork, GrowingContent, type FakePeer } from '../fakes/peer-network.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { silentLog } from '../fakes/log.js'
import { FAST_TIMING, newStats, peerInit, until } from './setup.js'

const REPO = 'library/app'
const MiB = PIECE_SIZE
/** 4 pieces, the last one half. */
const SIZE = 3.5 * MiB
/** 6 pieces: three two-piece runs, more than the named holder's one lane (NAMED_HOLDER_LANES). */
const BIG = 5.5 * MiB

function sha (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Bytes of `body` from `start` as they come out of `stream`; `onChunk` sees the running total. */
async function readAll (stream: Readable, onChunk?: (total: number) => void): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer)
    total += (chunk as Buffer).byteLength
    onChunk?.(total)
  }
  return Buffer.concat(chunks)
}

describe('BlobDownload in pieces: a joined blob comes piece by piece from its holders, and is served on while it arrives (issue 23)', () => {
  let t: TestStore
  let up: FakeRegistryUpstream
  let net: FakePeerNetwork
  let stats: Stats
  let controllers: AbortController[]
  let downloads: BlobDownload[]
  /** Random blobs by size, made once. */
  const blobs = new Map<number, Buffer>()

  before(() => {
    for (const size of [SIZE, BIG]) blobs.set(size, randomBytes(size))
  })

  beforeEach(async () => {
    t = await openTestStore({ policy: { maxSize: 64 * MiB } })
    up = new FakeRegistryUpstream()
    net = await FakePeerNetwork.create({ claimTimeoutMs: 20, inProgressIdleMs: 500, chunkBytes: 256 * 1024 })
    stats = newStats()
    controllers = []
    downloads = []
  })

  afterEach(async () => {
    for (const c of controllers) c.abort()
    await Promise.allSettled(downloads.map(async d => await d.done))
    assert.equal(net.openTransfers, 0, 'every transfer closed')
    await up.close()
    await t.dispose()
  })

  /** The blob of a test (the upstream has it too), and its digest. */
  function blob (size = SIZE): { body: Buffer, digest: Digest, path: string } {
    const body = blobs.get(size) ?? randomBytes(size)
    const digest = up.addBlob(REPO, body)
    return { body, digest, path: `/v2/${REPO}/blobs/${digest}` }
  }

  function start (digest: Digest): BlobDownload {
    const controller = new AbortController()
    controllers.push(controller)
    const log = silentLog()
    const d = new BlobDownload({
      digest,
      kind: 'blob',
      repo: REPO,
      client: up,
      store: t.store,
      stats,
      log,
      peers: peerInit(net, { stats, log, idleMs: 300 }),
      signal: controller.signal,
      timing: FAST_TIMING,
      pieceTiming: { lanes: 3, runPieces: 2 }
    })
    downloads.push(d)
    return d
  }

  /** The stored bytes of `digest`, if the store has it. */
  async function stored (digest: Digest): Promise<Buffer | undefined> {
    const h = await t.store.openRead(digest)
    if (h === undefined) return undefined
    try {
      return await h.read()
    } finally {
      await h.release()
    }
  }

  /** A holder still downloading `digest` (it holds the claim), speaking pieces. */
  async function fetchingHolder (body: Buffer, digest: Digest, label = 'holder'): Promise<{ holder: FakePeer, growing: GrowingContent }> {
    const growing = new GrowingContent(body)
    const holder = (await net.addPeer(label)).holdBlob(digest, growing).speaksPieces()
    assert.equal(net.holdClaim(holder, digest).status, 'fetch')
    return { holder, growing }
  }

  it('reads in pieces from the holder the claim names, serves verified pieces while it receives, commits the verified blob', async () => {
    const { body, digest, path } = blob()
    const { holder, growing } = await fetchingHolder(body, digest)
    growing.release(2 * MiB)
    const d = start(digest)
    await until(() => d.written >= 2 * MiB, 'pieces 0 and 1 written')
    assert.equal(d.cache, 'PEER')
    assert.equal(d.origin, holder.name)
    assert.equal(d.piecewise, true)
    assert.equal(d.verified, false)
    assert.equal(d.servesPeers, true, 'a receiver of verified pieces serves them on')
    const signal = new AbortController().signal
    assert.equal(
      await d.pieceHashes(0, 100, { signal }),
      sha(body.subarray(0, MiB)) + sha(body.subarray(MiB, 2 * MiB)),
      'the hashes of the pieces written so far'
    )
    assert.equal(await d.pieceHashes(1, 1, { signal }), sha(body.subarray(MiB, 2 * MiB)))
    // A hashes request past them waits for the next piece.
    const next = d.pieceHashes(2, 100, { signal })
    growing.release(MiB)
    assert.equal(await next, sha(body.subarray(2 * MiB, 3 * MiB)))
    growing.release()
    growing.finish()
    const record = await d.done
    assert.equal(record.size, SIZE)
    assert.ok((await stored(digest))?.equals(body), 'the verified blob is stored')
    assert.equal(d.verified, true)
    assert.equal(
      await d.pieceHashes(0, 100, { signal }),
      [0, 1, 2, 3].map(i => sha(body.subarray(i * MiB, Math.min(SIZE, (i + 1) * MiB)))).join(''),
      'every piece hash once verified'
    )
    assert.ok(holder.hashRequests.length > 0, 'piece hashes were asked of the holder')
    assert.ok(holder.requests.length > 0 && holder.requests.every(q => q.pieces === true), 'every request was for pieces')
    assert.equal(up.count('GET', path), 0, 'the upstream was never asked')
    const s = stats.snapshot()
    assert.equal(s.claims_joined, 1)
    assert.equal(s.peer_hits, 1)
    assert.equal(s.pieces_from_peers, 4)
    assert.equal(s.bytes_from_peers, SIZE)
    assert.equal(s.peer_inflight_joins, 1)
    assert.equal(s.upstream_fetches_saved, 1)
  })

  it('a reader of the whole blob gets it in order, and its last byte only once the blob verified', async () => {
    const { body, digest } = blob()
    const { growing } = await fetchingHolder(body, digest)
    const d = start(digest)
    assert.deepEqual(await d.ready, { size: SIZE })
    assert.ok(d.retain())
    let got = 0
    let verifiedAtLastByte: boolean | undefined
    const reading = readAll(d.reader(0, undefined), total => {
      got = total
      if (total === SIZE) verifiedAtLastByte = d.verified
    })
    try {
      // The holder has every byte but holds back the last until its copy verified.
      growing.release()
      await until(() => d.written === 3 * MiB && got === 3 * MiB - 1, 'pieces 0-2 written, the reader one byte short of them')
      assert.equal(d.verified, false)
      assert.equal(verifiedAtLastByte, undefined)
      growing.finish()
      assert.ok((await reading).equals(body), 'the whole blob, in order')
      assert.equal(verifiedAtLastByte, true, 'the last byte came after the digest verified')
    } finally {
      d.release()
    }
    await d.done
  })

  it("a reader of pieces over a span short of the blob's end gets the whole span without waiting for the end", async () => {
    const { body, digest } = blob()
    const { growing } = await fetchingHolder(body, digest)
    growing.release(2 * MiB)
    const d = start(digest)
    await d.ready
    assert.ok(d.retain())
    assert.ok(d.retain())
    let plainGot = 0
    try {
      const plain = readAll(d.reader(0, 2 * MiB), total => {
        plainGot = total
      })
      const span = await readAll(d.reader(0, 2 * MiB, true, true))
      assert.ok(span.equals(body.subarray(0, 2 * MiB)), 'the whole span')
      assert.equal(d.verified, false, 'before the blob verified')
      // A reader that does not check piece hashes waits for the digest for the span's last byte.
      await until(() => plainGot === 2 * MiB - 1, 'the plain reader one byte short')
      growing.release()
      growing.finish()
      assert.ok((await plain).equals(body.subarray(0, 2 * MiB)))
    } finally {
      d.release()
      d.release()
    }
    await d.done
    assert.ok((await stored(digest))?.equals(body))
  })

  it('a holder that does not speak pieces: the blob is read whole from it, as before', async () => {
    const { body, digest, path } = blob()
    const growing = new GrowingContent(body)
    const holder = (await net.addPeer('old')).holdBlob(digest, growing)
    net.holdClaim(holder, digest)
    growing.release(MiB)
    const d = start(digest)
    await until(() => d.written >= MiB - 1, 'the first bytes')
    assert.equal(d.piecewise, false)
    assert.equal(d.cache, 'PEER')
    assert.equal(d.servesPeers, false, 'a copy read whole from a peer is not served on before it verified')
    growing.release()
    growing.finish()
    await d.done
    assert.ok((await stored(digest))?.equals(body))
    assert.equal(holder.hashRequests.length, 1, 'asked for hashes once, refused')
    assert.ok(holder.requests.length > 0 && holder.requests.every(q => q.pieces !== true), 'no piece requests')
    assert.equal(up.count('GET', path), 0)
    const s = stats.snapshot()
    assert.equal(s.pieces_from_peers, 0)
    assert.equal(s.peer_hits, 1)
    assert.equal(s.bytes_from_peers, SIZE)
  })

  it('a seeder that answers every hashes request busy is given up after hashesBusyMs: the coordinator is asked again', async () => {
    const { body, digest } = blob()
    const { holder, growing } = await fetchingHolder(body, digest)
    holder.behave({ kind: 'busy' })
    const d = start(digest)
    await until(() => holder.hashRequests.length >= 2, 'hashes asked for again while busy')
    // FAST_TIMING gives it 300 ms: then a new claim (the holder keeps its lease: named again).
    await until(() => net.claimsOf('claim').length >= 2, 'the coordinator asked again')
    holder.behave({ kind: 'honest' })
    growing.release()
    growing.finish()
    await d.done
    assert.ok((await stored(digest))?.equals(body))
  })

  it('a seeder in the join answer is asked for the hashes, the pieces come from the named holder', async () => {
    const { body, digest, path } = blob()
    const named = (await net.addPeer('named')).holdBlob(digest, body).speaksPieces()
    const growing = new GrowingContent(body)
    const seeder = (await net.addPeer('seeder')).holdBlob(digest, growing).speaksPieces()
    net.claimMode = {
      kind: 'custom',
      answer: req =>
        req.op === 'claim'
          ? { status: 'join', peer: named.name, addrs: named.addrs, committed: false, seeder: { peer: seeder.name, addrs: seeder.addrs } }
          : { status: 'ok' }
    }
    const d = start(digest)
    // Pieces can be written only once the seeder has their hashes.
    await until(() => named.requests.length >= 1, 'the named holder asked for the first run')
    assert.equal(d.written, 0)
    assert.deepEqual(named.requests.map(q => q.start), [0], 'one lane to the named holder (NAMED_HOLDER_LANES)')
    growing.release()
    growing.finish()
    await d.done
    assert.ok((await stored(digest))?.equals(body))
    assert.equal(d.origin, named.name)
    assert.ok(seeder.hashRequests.length > 0, 'hashes from the seeder')
    assert.deepEqual(named.hashRequests, [], 'no hashes from the named holder')
    // A request for no bytes (start = end) is a probe of its progress, not a run of pieces.
    assert.ok(
      seeder.requests.every(q => q.start === q.end),
      `no pieces from the seeder while the named holder is live (${JSON.stringify(seeder.requests)})`
    )
    assert.deepEqual(named.requests.filter(q => q.start !== q.end).map(q => q.start), [0, 2 * MiB], 'every run from the named holder')
    assert.ok(named.requests.every(q => q.pieces === true))
    assert.equal(up.count('GET', path), 0)
    assert.equal(stats.snapshot().pieces_from_peers, 4)
    assert.equal(stats.snapshot().peer_hits, 1)
  })

  it('the others in the join answer serve pieces too', async () => {
    const { body, digest, path } = blob(BIG)
    const named = (await net.addPeer('named')).holdBlob(digest, body).speaksPieces()
    const other = (await net.addPeer('other')).holdBlob(digest, body).speaksPieces()
    net.claimMode = {
      kind: 'custom',
      answer: req =>
        req.op === 'claim'
          ? { status: 'join', peer: named.name, addrs: named.addrs, committed: true, others: [{ peer: other.name, addrs: other.addrs }] }
          : { status: 'ok' }
    }
    const d = start(digest)
    await d.done
    assert.ok((await stored(digest))?.equals(body))
    assert.ok(
      other.requests.some(q => q.pieces === true && (q.end ?? BIG) > (q.start ?? 0)),
      `the other holder served a run (${JSON.stringify(other.requests)})`
    )
    assert.ok(named.requests.some(q => q.pieces === true && (q.end ?? BIG) > (q.start ?? 0)))
    assert.deepEqual(other.hashRequests, [], 'hashes come from the named holder alone')
    assert.equal(up.count('GET', path), 0)
    assert.equal(stats.snapshot().pieces_from_peers, 6)
  })

  it('a hash source two holders contradict is not read again by this download, though the coordinator names it again: the blob comes whole from a provider the DHT knows, not the upstream', async () => {
    const { body, digest, path } = blob(BIG)
    const liar = (await net.addPeer('liar', { kind: 'liar', at: 4.5 * MiB })).holdBlob(digest, body).speaksPieces()
    const [named, other] = await Promise.all(['h1', 'h2'].map(async l => (await net.addPeer(l)).holdBlob(digest, body).speaksPieces()))
    if (named === undefined || other === undefined) throw new Error('two holders')
    // The liar is the seeder (the hash source); the honest holders send the pieces.
    net.claimMode = {
      kind: 'custom',
      answer: req =>
        req.op === 'claim'
          ? {
            status: 'join',
            peer: named.name,
            addrs: named.addrs,
            committed: false,
            seeder: { peer: liar.name, addrs: liar.addrs },
            others: [{ peer: other.name, addrs: other.addrs }]
          }
          : { status: 'ok' }
    }
    const d = start(digest)
    await d.done
    assert.ok((await stored(digest))?.equals(body), 'the right blob is stored')
    assert.equal(
      liar.hashRequests.filter(from => from === 0).length,
      1,
      `one round of pieces vouched for by the liar (hash requests from ${JSON.stringify(liar.hashRequests)})`
    )
    assert.ok(net.claims.slice(1).every(c => c.request.failed?.includes(liar.name) === true), 'every later claim reports it')
    assert.equal(up.count('GET', path), 0, 'the holders the coordinator kept naming with the liar failed; another provider served it')
    assert.ok(
      [named, other].some(h => h.requests.some(q => q.pieces !== true && q.hashes === undefined)),
      'a whole copy from a holder, nothing the liar vouched for kept'
    )
  })

  it('a hash source whose hashes and bytes are consistently wrong: the digest check fails, it is deny-listed, the blob comes from the upstream', async () => {
    const { body, digest, path } = blob()
    const liar = (await net.addPeer('liar', { kind: 'liar', at: 1.5 * MiB })).holdBlob(digest, body).speaksPieces()
    const d = start(digest)
    const record = await d.done
    assert.equal(record.size, SIZE)
    assert.ok((await stored(digest))?.equals(body), 'the right blob is stored')
    assert.ok(liar.hashRequests.length > 0 && liar.requests.some(q => q.pieces === true), 'the liar was read in pieces')
    assert.ok(net.isDenied(liar.name), 'the hash source is deny-listed')
    assert.deepEqual(net.claims[1]?.request.failed, [liar.name], 'the next claim reports it')
    assert.equal(d.cache, 'MISS')
    assert.equal(up.count('GET', path), 1)
    assert.equal(
      up.requests.find(q => q.path === path)?.headers.range,
      undefined,
      "the upstream is asked for the whole blob: nothing of the liar's is kept"
    )
    const s = stats.snapshot()
    assert.equal(s.peers_denied, 1)
    assert.equal(s.peer_hits, 0)
    assert.equal(s.upstream_hits, 1)
  })
})
