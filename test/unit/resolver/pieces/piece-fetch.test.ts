import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { PIECE_SIZE } from '../../../../src/p2p/constants.js'
import { HOLDER_BUSY_FIRST_MS } from '../../../../src/resolver/pieces/constants.js'
import { PeerFetchError } from '../../../../src/p2p/fetch/errors.js'
import type { Stats } from '../../../../src/metrics/stats.js'
import type { PeerNetwork } from '../../../../src/resolver/peer-network.js'
import { sha256Digest, type Digest } from '../../../../src/oci/digest.js'
import { fetchPieces, type PieceOutcome } from '../../../../src/resolver/pieces/piece-fetch.js'
import { PieceMap } from '../../../../src/resolver/pieces/piece-map.js'
import { PieceSources, type PieceSource, type PieceSourcesInit } from '../../../../src/resolver/pieces/piece-sources.js'
import { FakePeerNetwork, GrowingContent, type FakePeer } from '../../fakes/peer-network.js'
import { silentLog } from '../../fakes/log.js'
import { newStats, until } from '../setup.js'

const MiB = PIECE_SIZE
/** 4 pieces, the last one half. */
const SIZE = 3.5 * MiB
/** 6 pieces, the last one half: 3 lanes of 2-piece runs. */
const BIG = 5.5 * MiB
const IDLE_MS = 300
/** An abort is noticed within this (generous: the machine may be loaded). */
const PROMPT_MS = 250

function sha (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** The piece hashes of `body`. */
function hashesOf (body: Buffer): string[] {
  const out: string[] = []
  for (let at = 0; at < body.byteLength; at += PIECE_SIZE) out.push(sha(body.subarray(at, Math.min(body.byteLength, at + PIECE_SIZE))))
  return out
}

/** Expects a PeerFetchError of `peer` (by name) with `reason`. */
function peerError (peer: FakePeer, reason: PeerFetchError['reason']): (err: unknown) => boolean {
  return (err: unknown): boolean => {
    assert.ok(err instanceof PeerFetchError, `expected a PeerFetchError, got ${String(err)}`)
    assert.equal(err.reason, reason, err.message)
    assert.equal(err.peer, peer.name, err.message)
    return true
  }
}

describe("fetchPieces: a blob's pieces from several holders at once, each verified before it is written (issue 23)", () => {
  let net: FakePeerNetwork
  let body: Buffer
  let digest: Digest
  let hashes: string[]
  /** Runs still going when a test ended (a failed assertion): aborted in afterEach. */
  let controllers: AbortController[]
  let running: Array<Promise<unknown>>
  /** Random blobs by size, made once (hashing and filling MiBs per test adds up). */
  const blobs = new Map<number, Buffer>()

  before(() => {
    for (const size of [SIZE, BIG]) blobs.set(size, randomBytes(size))
  })

  beforeEach(async () => {
    net = await FakePeerNetwork.create({ chunkBytes: 256 * 1024, inProgressIdleMs: 500 })
    controllers = []
    running = []
  })

  afterEach(async () => {
    for (const c of controllers) c.abort()
    await Promise.allSettled(running)
    assert.equal(net.openTransfers, 0, 'every transfer closed')
  })

  /** The blob of this test: `size` random bytes. */
  function blob (size = SIZE): void {
    body = blobs.get(size) ?? randomBytes(size)
    digest = sha256Digest(body)
    hashes = hashesOf(body)
  }

  /** A holder of the whole blob (a stored copy) speaking pieces. */
  async function holder (label: string, behaviour?: Parameters<FakePeer['behave']>[0]): Promise<FakePeer> {
    const p = (await net.addPeer(label)).holdBlob(digest, body).speaksPieces()
    if (behaviour !== undefined) p.behave(behaviour)
    return p
  }

  function sourceOf (sources: PieceSources, peer: FakePeer): PieceSource {
    const s = sources.all.find(x => x.name === peer.name)
    assert.ok(s !== undefined, `${peer.label} is a source`)
    return s
  }

  /**
   * The sources: `named` first, then `others`; `known` said they hold the whole blob. `random`
   * 0.5: ties go to the first listed, pauses are exactly 100, 200, 400... ms. `opts.seeder`: the
   * one of `others` fetching the blob (picked last); `opts.init`: PieceSources overrides.
   */
  function sourcesOf (
    named: FakePeer,
    others: FakePeer[] = [],
    known: FakePeer[] = [],
    opts: { seeder?: FakePeer, init?: Partial<PieceSourcesInit> } = {}
  ): PieceSources {
    const sources = new PieceSources(named.ref, others.map(o => o.ref), {
      isDenied: peer => net.isDenied(peer),
      random: () => 0.5,
      ...opts.init
    }, opts.seeder?.name)
    for (const k of known) sources.served(sourceOf(sources, k), body.byteLength)
    return sources
  }

  interface Run {
    promise: Promise<PieceOutcome>
    /** The bytes written, where they were written. */
    out: Buffer
    /** Offsets of the pieces written, in order of writing. */
    writes: number[]
    map: PieceMap
    stats: Stats
    controller: AbortController
    /** Most transfers open at once, as seen at each write. */
    maxOpen: number
  }

  /**
   * fetchPieces with hashes from `hashSource`. `preload`: the map already has every hash (as
   * after the hash source's first answer, see BlobDownload.fromPieces), so no hashes request is
   * made; `preload` an array: those hashes instead of the right ones.
   */
  function run (
    hashSource: FakePeer,
    sources: PieceSources,
    opts: { preload?: boolean | string[], idleMs?: number, network?: PeerNetwork } = {}
  ): Run {
    const map = new PieceMap(body.byteLength)
    if (opts.preload === true) map.addHashes(0, hashes)
    else if (Array.isArray(opts.preload)) map.addHashes(0, opts.preload)
    const out = Buffer.alloc(body.byteLength)
    const controller = new AbortController()
    controllers.push(controller)
    const stats = newStats()
    const r: Run = { promise: Promise.resolve({ suspects: new Set() }), out, writes: [], map, stats, controller, maxOpen: 0 }
    const expected = Array.isArray(opts.preload) ? opts.preload : hashes
    r.promise = fetchPieces({
      network: opts.network ?? net,
      digest,
      map,
      sources,
      hashSource: hashSource.ref,
      write: async (start, chunks) => {
        r.maxOpen = Math.max(r.maxOpen, net.openTransfers)
        const piece = Buffer.concat(chunks)
        assert.equal(start % PIECE_SIZE, 0, 'a piece starts at a piece boundary')
        assert.equal(sha(piece), expected[start / PIECE_SIZE], `piece ${start / PIECE_SIZE} is written only once it matched its hash`)
        piece.copy(out, start)
        r.writes.push(start)
      },
      signal: controller.signal,
      idleMs: opts.idleMs ?? IDLE_MS,
      stats,
      log: silentLog(),
      timing: { runPieces: 2, lanes: 3 }
    })
    // Awaited by the test; a rejection while it waits for something else is not unhandled.
    r.promise.catch(() => {})
    running.push(r.promise)
    return r
  }

  /** Each piece written once, and the bytes are the blob's. */
  function assertWhole (r: Run): void {
    assert.deepEqual([...r.writes].sort((a, b) => a - b), hashes.map((_, i) => i * PIECE_SIZE), 'every piece written once')
    assert.ok(r.out.equals(body), 'the bytes written are the blob')
    assert.equal(r.map.done, true)
    assert.equal(r.stats.snapshot().pieces_from_peers, hashes.length)
    assert.equal(r.stats.snapshot().bytes_from_peers, body.byteLength)
  }

  it("writes every piece, each checked against the hash source's hashes (followed from piece 0)", async () => {
    blob()
    const h = await holder('h')
    const r = run(h, sourcesOf(h))
    const outcome = await r.promise
    assertWhole(r)
    assert.equal(outcome.suspects.size, 0)
    assert.deepEqual(h.hashRequests, [0], 'one hashes request: a stored copy hands them all out at once')
    assert.ok(h.requests.length > 0 && h.requests.every(q => q.pieces === true && q.key === digest))
    assert.equal(r.stats.snapshot().pieces_refetched, 0)
  })

  it('fetches runs from several holders at once: the named holder one, holders known to have them the others', async () => {
    blob(BIG)
    const a = await holder('a')
    const b = await holder('b')
    const c = await holder('c')
    const r = run(a, sourcesOf(a, [b, c], [a, b, c]))
    await r.promise
    assertWhole(r)
    for (const p of [a, b, c]) assert.ok(p.requests.every(q => q.pieces === true), `${p.label} was asked for pieces`)
    assert.deepEqual(
      a.requests.map(q => q.start),
      [0],
      'the named holder: the first run (NAMED_HOLDER_LANES, one lane following its download)'
    )
    assert.deepEqual(b.requests.map(q => q.start), [2 * MiB], 'the second run: the first other holder known to have it')
    assert.deepEqual(c.requests.map(q => q.start), [4 * MiB], 'the third run: the next other holder (one transfer each)')
    assert.equal(r.maxOpen, 3, 'the three runs were open at once')
    assert.deepEqual(net.fetchCounts(), { a: 1, b: 1, c: 1 }, 'one request per run, one run per holder')
  })

  it('namedLanes 2: the named holder two runs, a holder known to have them the third', async () => {
    blob(BIG)
    const a = await holder('a')
    const b = await holder('b')
    const c = await holder('c')
    const r = run(a, sourcesOf(a, [b, c], [a, b, c], { init: { namedLanes: 2 } }))
    await r.promise
    assertWhole(r)
    assert.deepEqual(a.requests.map(q => q.start), [0, 2 * MiB], 'the named holder: the first two runs')
    assert.deepEqual(b.requests.map(q => q.start), [4 * MiB], 'the third run: the first other holder known to have it')
    assert.equal(r.maxOpen, 3, 'the three runs were open at once')
    assert.deepEqual(net.fetchCounts(), { a: 2, b: 1, c: 0 }, 'one request per run; three lanes, so c was not needed')
  })

  it('a holder that sends a wrong piece: the piece comes from another holder; the sender is a suspect, not deny-listed here', async () => {
    blob()
    // The liar is the named holder (a receiver relaying pieces); the hashes come from the seeder h.
    const h = await holder('h')
    const liar = await holder('liar', { kind: 'liar', at: 1.5 * MiB })
    const r = run(h, sourcesOf(liar, [h], [h], { seeder: h }))
    const outcome = await r.promise
    assertWhole(r)
    assert.deepEqual(
      liar.requests.map(q => q.start),
      [0],
      'the liar was asked for the first run (its one lane); after the wrong piece it is not asked again'
    )
    assert.ok(
      h.requests.some(q => q.start === MiB && q.end !== q.start),
      'piece 1 was asked of the hash source (the only other holder, the seeder: the named holder is gone)'
    )
    // A request for no bytes (start = end) is a probe; the others are runs.
    assert.deepEqual(
      h.requests.filter(q => q.end !== q.start).map(q => q.start),
      [MiB, 3 * MiB],
      "the seeder's runs: none before the liar was gone (pieces 2-3 were not asked of it meanwhile), then the rest from piece 1"
    )
    assert.deepEqual([...outcome.suspects], [liar.name])
    assert.equal(net.isDenied(liar.name), false, 'the caller deny-lists suspects once the blob verified')
    assert.equal(net.denied.size, 0)
    const s = r.stats.snapshot()
    assert.equal(s.pieces_refetched, 1)
    assert.equal(s.peers_denied, 0)
  })

  it('the seeder serves no run while the named holder is live, though it has the whole blob and lanes are free', async () => {
    blob()
    // h, the seeder, has every piece (and hands out the hashes); the named holder is still downloading.
    const h = await holder('h')
    const growing = new GrowingContent(body)
    growing.release(1.5 * MiB)
    const named = (await net.addPeer('named')).holdBlob(digest, growing).speaksPieces()
    const r = run(h, sourcesOf(named, [h], [h], { seeder: h }))
    await until(() => r.writes.length === 1, 'piece 0 written', 1000)
    // A few turns of the loop: pieces 2-3 are free to ask for, only the seeder has them.
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.deepEqual(r.writes, [0], 'piece 1 waits on the named holder, pieces 2-3 on nobody')
    assert.equal(net.openTransfers, 1, "one transfer: the named holder's lane")
    growing.release()
    growing.finish()
    const outcome = await r.promise
    assertWhole(r)
    assert.deepEqual(named.requests.map(q => q.start), [0, 2 * MiB], 'every run from the named holder, one lane at a time')
    // A request for no bytes (start = end) is a probe.
    assert.ok(h.requests.every(q => q.end === q.start), `no run of the seeder (${JSON.stringify(h.requests)})`)
    assert.equal(outcome.suspects.size, 0)
  })

  it('the hash source sending a piece that contradicts its own hashes is deny-listed at once: mismatch', async () => {
    blob()
    const h = await holder('h', { kind: 'liar', at: 1.5 * MiB })
    // The map has the hash source's (right) hashes, as from its first answer; its bytes of piece 1 are wrong.
    const r = run(h, sourcesOf(h), { preload: true })
    await assert.rejects(r.promise, peerError(h, 'mismatch'))
    assert.ok(net.isDenied(h.name), 'the hash source is deny-listed')
    assert.equal(r.stats.snapshot().peers_denied, 1)
    assert.ok(!r.writes.includes(MiB), 'the wrong piece was not written')
  })

  it("two holders sending the same piece against the hash source's hash: the hash source is the one at fault (mismatch)", async () => {
    blob()
    // Its hashes are of its own wrong copy (piece 1); it is asked for hashes only.
    const h = await holder('h', { kind: 'liar', at: 1.5 * MiB })
    const a = await holder('a')
    const b = await holder('b')
    const r = run(h, sourcesOf(a, [b], [a, b]))
    await assert.rejects(r.promise, peerError(h, 'mismatch'))
    assert.ok(a.requests.some(q => (q.start ?? 0) <= MiB && (q.end ?? Infinity) > MiB), 'a was asked for piece 1')
    assert.ok(b.requests.some(q => (q.start ?? 0) <= MiB && (q.end ?? Infinity) > MiB), 'b was asked for piece 1')
    assert.equal(net.denied.size, 0, 'nobody is deny-listed by fetchPieces: the final digest decides')
  })

  it('a busy holder cools off and is asked again; peer_busy_answers counts each busy answer', async () => {
    blob()
    const h = await holder('h', { kind: 'busy', times: 2 })
    const r = run(h, sourcesOf(h), { preload: true })
    const outcome = await r.promise
    assertWhole(r)
    assert.equal(r.stats.snapshot().peer_busy_answers, 2)
    assert.ok(h.fetches >= 3, `asked again after busy (${h.fetches} fetches)`)
    assert.equal(outcome.suspects.size, 0)
    assert.equal(net.isDenied(h.name), false)
  })

  it('a holder that stalls mid-run loses the run to another holder; the blob completes', async () => {
    blob()
    const h = await holder('h')
    // The stalling holder is the named one (it gets the first run); h, the seeder, hands out the hashes.
    const stuck = await holder('stuck', { kind: 'stall', after: 300 * 1024 })
    const other = await holder('other')
    const started = Date.now()
    const sources = sourcesOf(stuck, [h, other], [h, other], { seeder: h })
    const r = run(h, sources)
    const outcome = await r.promise
    assertWhole(r)
    assert.equal(stuck.requests[0]?.start, 0, 'the stalling holder had the first run')
    assert.ok(other.requests.some(q => q.start === 0), 'the first run was asked of the other holder')
    assert.ok(
      h.requests.every(q => q.end === q.start),
      'no run of the seeder: the stalling named holder cools off, it is not gone (at most a probe)'
    )
    assert.equal(sourceOf(sources, stuck).gone, false, 'one stall: it cools off')
    assert.equal(outcome.suspects.size, 0, 'a stall is no lie')
    assert.equal(net.isDenied(stuck.name), false)
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`)
  })

  it('a dead holder among others: the others complete the blob', async () => {
    blob()
    const h = await holder('h')
    const dead = await holder('dead', { kind: 'dead' })
    const other = await holder('other')
    // h (named) takes the first run (its one lane); the second goes to dead (listed first of the equal others), then to other.
    const r = run(h, sourcesOf(h, [dead, other], [dead, other]))
    const outcome = await r.promise
    assertWhole(r)
    assert.deepEqual(dead.requests.map(q => q.start), [2 * MiB], 'dead was asked for the second run, and not asked again')
    assert.equal(other.requests[0]?.start, 2 * MiB, 'its run went to the other holder')
    assert.equal(outcome.suspects.size, 0)
    assert.equal(net.isDenied(dead.name), false)
  })

  it('no holder left (all dead): rejects with a PeerFetchError', async () => {
    blob()
    const h = await holder('h', { kind: 'dead' })
    const d = await holder('d', { kind: 'dead' })
    const r = run(h, sourcesOf(h, [d], [d]), { preload: true })
    await assert.rejects(r.promise, peerError(h, 'not_found'))
    assert.equal(r.writes.length, 0)
  })

  it('the hash source unreachable: rejects with its PeerFetchError', async () => {
    blob()
    const h = await holder('h', { kind: 'dead' })
    const other = await holder('other')
    const r = run(h, sourcesOf(other, [], [other]))
    await assert.rejects(r.promise, peerError(h, 'dial'))
  })

  it('the signal aborting mid-transfer: rejects promptly, every transfer closed', async () => {
    blob()
    // A holder still downloading: its runs wait for bytes it does not have yet.
    const growing = new GrowingContent(body)
    growing.release(1.5 * MiB)
    const h = (await net.addPeer('h')).holdBlob(digest, growing).speaksPieces()
    // Two lanes to it, so two transfers wait at once.
    const r = run(h, sourcesOf(h, [], [], { init: { namedLanes: 2 } }))
    await until(() => r.writes.length === 1 && net.openTransfers === 2, 'piece 0 written, two transfers waiting for more', 1000)
    const aborted = Date.now()
    r.controller.abort()
    await assert.rejects(r.promise, (err: Error) => err.name === 'AbortError')
    assert.ok(Date.now() - aborted < PROMPT_MS, `rejected ${Date.now() - aborted} ms after the abort`)
    assert.equal(net.openTransfers, 0, 'no transfer left open')
  })

  it('the signal aborting while every holder cools off (busy): rejects promptly', async () => {
    blob()
    const h = await holder('h', { kind: 'busy' })
    const r = run(h, sourcesOf(h), { preload: true })
    // Busy answers 3 and 4 set a pause of 800 ms (100, 200, 400, 800).
    await until(() => r.stats.snapshot().peer_busy_answers >= 4, 'four busy answers', 5_000)
    const aborted = Date.now()
    r.controller.abort()
    await assert.rejects(r.promise, (err: Error) => err.name === 'AbortError')
    assert.ok(Date.now() - aborted < PROMPT_MS, `rejected ${Date.now() - aborted} ms after the abort`)
    assert.equal(net.openTransfers, 0)
  })

  it('the signal aborting while the only holder cools off for long: rejects at once, not at the next wake-up', async () => {
    blob()
    const h = await holder('h', { kind: 'busy' })
    // A first pause of 5 s: the loop sleeps until its 1 s backstop (PROBE_INTERVAL_MS) unless the abort wakes it.
    const r = run(h, sourcesOf(h, [], [], { init: { busyFirstMs: 5_000, busyMaxMs: 10_000 } }), { preload: true })
    await until(() => r.stats.snapshot().peer_busy_answers >= 1 && net.openTransfers === 0, 'its lane answered busy', 1000)
    // Into the wait: nothing to ask, nothing running.
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(h.fetches, 1, 'cooling: not asked again')
    const aborted = Date.now()
    r.controller.abort()
    await assert.rejects(r.promise, (err: Error) => err.name === 'AbortError')
    assert.ok(Date.now() - aborted < 100, `rejected ${Date.now() - aborted} ms after the abort`)
  })

  it('a partial holder that answers busy with `have` below the start is not asked again before it has more', async () => {
    blob(BIG)
    const h = await holder('h')
    const growing = new GrowingContent(body)
    growing.release(1.5 * MiB)
    const partial = (await net.addPeer('partial')).holdBlob(digest, growing).speaksPieces(true)
    const sources = sourcesOf(h, [partial])
    const r = run(h, sources)
    await r.promise
    assertWhole(r)
    // The named holder takes pieces 0-1 in its one run; piece 2 is wanted, the partial holder's progress is asked for.
    assert.equal(partial.requests.length, 1, `asked once (${JSON.stringify(partial.requests)})`)
    const q = partial.requests[0]
    assert.equal(q?.pieces, true)
    assert.equal(q?.start, 2 * MiB)
    assert.equal(sourceOf(sources, partial).have, 1.5 * MiB, 'its busy answer said how far it is')
    assert.equal(sourceOf(sources, partial).gone, false, 'busy is no failure')
    assert.equal(growing.have, 1.5 * MiB, 'it got no further meanwhile')
    assert.ok(sourceOf(sources, partial).coolUntil > 0, 'it answered busy: it cooled off')
  })

  it('the hash source answering busy to a later hashes request (alive, loaded) is asked again, not a failure', async () => {
    blob()
    const growing = new GrowingContent(body)
    growing.release(1.5 * MiB)
    const h = (await net.addPeer('h')).holdBlob(digest, growing).speaksPieces()
    // The fake network, but the second hashes request gets `busy` (as a real server answers while its download waits for a source).
    let calls = 0
    const network: PeerNetwork = {
      peerId: net.peerId,
      providers: (key, options) => net.providers(key, options),
      fetch: async (ref, request, o) => await net.fetch(ref, request, o),
      pieceHashes: async (ref, key, from, o) => {
        if (++calls === 2) {
          throw new PeerFetchError(ref.id.toString(), 'busy', 'answered busy: fetching it; the upstream has not answered yet', 0)
        }
        return await net.pieceHashes(ref, key, from, o)
      },
      claim: async (request, options) => await net.claim(request, options),
      deny: (peer, reason) => {
        net.deny(peer, reason)
      },
      isDenied: peer => net.isDenied(peer),
      announce: key => {
        net.announce(key)
      },
      forget: key => {
        net.forget(key)
      }
    }
    const r = run(h, sourcesOf(h), { network })
    await until(() => calls >= 2, 'the second hashes request', 1000)
    growing.release()
    growing.finish()
    await r.promise
    assertWhole(r)
    assert.ok(calls >= 3, 'asked for hashes again after busy')
  })

  it('the hash source answering busy to a hashes request is asked again after a pause; the transfer completes', async () => {
    blob()
    // h hands out the hashes only (as a seeder the named holder relays); its first two hashes answers are busy.
    const h = await holder('h', { kind: 'busy', times: 2 })
    const a = await holder('a')
    const started = Date.now()
    const r = run(h, sourcesOf(a))
    const outcome = await r.promise
    assertWhole(r)
    assert.deepEqual(h.hashRequests, [0, 0, 0], 'asked for the hashes from piece 0 again after each busy answer')
    assert.equal(h.fetches, 0, 'no pieces asked of it')
    assert.equal(r.stats.snapshot().peer_busy_answers, 2)
    // Pauses of HOLDER_BUSY_FIRST_MS, then twice that, each jittered down to half at least.
    const least = (HOLDER_BUSY_FIRST_MS + 2 * HOLDER_BUSY_FIRST_MS) / 2
    assert.ok(Date.now() - started >= least - 5, `paused between the asks (${Date.now() - started} ms)`)
    assert.equal(outcome.suspects.size, 0)
    assert.equal(net.isDenied(h.name), false, 'busy is no failure')
  })
})
