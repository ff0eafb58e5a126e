import assert from 'node:assert/strict'
import type { PeerRef } from '../../../../src/p2p/fetch/client.js'
import {
  HOLDER_BUSY_FIRST_MS,
  HOLDER_BUSY_MAX_MS,
  MAX_SOURCE_FAILURES,
  NAMED_HOLDER_LANES,
  PROBE_INTERVAL_MAX_MS,
  PROBE_INTERVAL_MS
} from '../../../../src/resolver/pieces/constants.js'
import { PieceSources, type PieceSource, type PieceSourcesInit } from '../../../../src/resolver/pieces/piece-sources.js'
import { newPeerId } from '../../fakes/peer-network.js'

/** Pieces of 4 bytes in a blob of 40 (10 pieces). */
const PIECE = 4
const SIZE = 40

describe('PieceSources: which holder is asked for the next run of pieces (issue 23)', () => {
  let named: PeerRef
  let o1: PeerRef
  let o2: PeerRef
  let o3: PeerRef
  let now: number
  let denied: Set<string>

  before(async () => {
    const refs = await Promise.all([0, 1, 2, 3].map(async (): Promise<PeerRef> => ({ id: await newPeerId(), multiaddrs: [] })))
    ;[named, o1, o2, o3] = refs as [PeerRef, PeerRef, PeerRef, PeerRef]
  })

  beforeEach(() => {
    now = 1_000_000
    denied = new Set()
  })

  /** `seeder`: the peer ID of the holder fetching the blob from the upstream (PieceSources' 4th argument). */
  function sources (others: PeerRef[] = [o1, o2, o3], init: Partial<PieceSourcesInit> = {}, seeder?: string): PieceSources {
    return new PieceSources(named, others, { isDenied: peer => denied.has(peer), now: () => now, random: () => 0.5, ...init }, seeder)
  }

  /** The named holder runs NAMED_HOLDER_LANES transfers already: `pick` looks at the others. */
  function namedFull (s: PieceSources): void {
    s.named.lanes = NAMED_HOLDER_LANES
  }

  /** The source of `ref`. */
  function of (s: PieceSources, ref: PeerRef): PieceSource {
    const found = s.all.find(x => x.name === ref.id.toString())
    assert.ok(found !== undefined)
    return found
  }

  /** Who `pick` names for pieces from `offset` (its peer ID), with the maxPieces it gives. */
  function pick (s: PieceSources, offset = 0, size = SIZE): { peer: string, maxPieces: number } | undefined {
    const choice = s.pick(offset, PIECE, size)
    return choice === undefined ? undefined : { peer: choice.source.name, maxPieces: choice.maxPieces }
  }

  const id = (ref: PeerRef): string => ref.id.toString()

  describe('the sources', () => {
    it('the named holder comes first, marked named; the others follow, each once', () => {
      const s = sources([o1, named, o2, o1])
      assert.deepEqual(s.all.map(x => x.name), [id(named), id(o1), id(o2)])
      assert.equal(s.named.name, id(named))
      assert.deepEqual(s.all.map(x => x.named), [true, false, false])
      assert.deepEqual(s.all.map(x => x.seeder), [false, false, false], 'no seeder given')
      assert.ok(s.all.every(x => x.have === undefined && x.lanes === 0 && !x.gone && x.failures === 0))
    })

    it('the holder given as the seeder is marked seeder; the named holder never is', () => {
      const s = sources([o1, o2], {}, id(o2))
      assert.deepEqual(s.all.map(x => [x.name, x.named, x.seeder]), [
        [id(named), true, false],
        [id(o1), false, false],
        [id(o2), false, true]
      ])
      const namedSeeds = sources([o1], {}, id(named))
      assert.deepEqual(
        namedSeeds.all.map(x => x.seeder),
        [false, false],
        'the named holder fetching it itself is the named holder, not "the seeder"'
      )
      const absent = sources([o1], {}, id(o3))
      assert.deepEqual(absent.all.map(x => x.seeder), [false, false], 'a seeder not among the holders marks nobody')
    })
  })

  describe('pick', () => {
    it('with nothing known, the named holder for the whole rest of the blob, up to NAMED_HOLDER_LANES transfers, then nobody', () => {
      const s = sources()
      for (let lane = 0; lane < NAMED_HOLDER_LANES; lane++) {
        assert.deepEqual(pick(s), { peer: id(named), maxPieces: Infinity })
        s.named.lanes++
      }
      assert.equal(pick(s), undefined, "the others' progress is unknown: they are probed, not asked")
      s.named.lanes--
      assert.deepEqual(pick(s, 8), { peer: id(named), maxPieces: Infinity })
    })

    it('one lane follows the named holder (NAMED_HOLDER_LANES); namedLanes overrides it', () => {
      const one = sources([o1])
      one.served(of(one, o1), SIZE)
      assert.equal(pick(one)?.peer, id(named))
      one.named.lanes++
      assert.deepEqual(pick(one), { peer: id(o1), maxPieces: Infinity }, 'the next lane: a holder known to have the piece')
      const two = sources([o1], { namedLanes: 2 })
      two.served(of(two, o1), SIZE)
      for (let lane = 0; lane < 2; lane++) {
        assert.equal(pick(two)?.peer, id(named), `lane ${lane + 1}: the named holder`)
        two.named.lanes++
      }
      assert.equal(pick(two)?.peer, id(o1), 'its two lanes run: the holder known to have the piece')
    })

    it('the named holder is preferred over a holder known to have the piece whole, until it runs NAMED_HOLDER_LANES transfers', () => {
      const s = sources()
      s.served(of(s, o2), PIECE)
      for (let lane = 0; lane < NAMED_HOLDER_LANES; lane++) {
        assert.deepEqual(
          pick(s),
          { peer: id(named), maxPieces: Infinity },
          `lane ${lane + 1}: the named holder (it follows its own download)`
        )
        s.named.lanes++
      }
      assert.deepEqual(pick(s), { peer: id(o2), maxPieces: 1 }, 'the named holder is full: the holder known to have piece 0')
      s.named.lanes--
      assert.equal(pick(s)?.peer, id(named), 'a lane of the named holder ended: it is preferred again')
    })

    it('the named holder cooling off, gone or denied: a holder known to have the piece is asked instead', () => {
      const s = sources()
      s.served(of(s, o2), SIZE)
      s.busy(s.named)
      assert.deepEqual(pick(s), { peer: id(o2), maxPieces: Infinity }, 'the named holder cools')
      now = s.named.coolUntil
      assert.equal(pick(s)?.peer, id(named), 'cooled: preferred again')
      denied.add(id(named))
      assert.equal(pick(s)?.peer, id(o2), 'denied')
      denied.clear()
      s.failed(s.named)
      assert.equal(pick(s)?.peer, id(o2), 'gone')
    })

    it('a holder with a transfer to this receiver already is passed over for one without', () => {
      const s = sources()
      namedFull(s)
      s.served(of(s, o1), SIZE)
      s.served(of(s, o2), SIZE)
      of(s, o1).lanes++
      assert.equal(pick(s)?.peer, id(o2))
      of(s, o2).lanes++
      assert.equal(pick(s), undefined, 'both busy with this receiver, the named holder full: nobody')
      s.named.lanes--
      assert.equal(pick(s)?.peer, id(named), 'the named holder follows its own download')
    })

    it('among holders that have the piece, the one that has the least', () => {
      const s = sources()
      namedFull(s)
      s.served(of(s, o1), SIZE)
      s.served(of(s, o2), 12)
      s.served(of(s, o3), 20)
      assert.deepEqual(pick(s), { peer: id(o2), maxPieces: 3 })
      assert.deepEqual(pick(s, 12), { peer: id(o3), maxPieces: 2 }, 'o2 does not have piece 3')
      assert.deepEqual(pick(s, 20), { peer: id(o1), maxPieces: Infinity })
    })

    it('among equal holders, random picks one: each stays with a chance of 1/k', () => {
      const keepFirst = sources(undefined, { random: () => 0.99 })
      namedFull(keepFirst)
      for (const ref of [o1, o2, o3]) keepFirst.served(of(keepFirst, ref), SIZE)
      assert.equal(pick(keepFirst)?.peer, id(o1))
      const takeLast = sources(undefined, { random: () => 0 })
      namedFull(takeLast)
      for (const ref of [o1, o2, o3]) takeLast.served(of(takeLast, ref), SIZE)
      assert.equal(pick(takeLast)?.peer, id(o3))
      const draws = [0.4, 0.9]
      const second = sources(undefined, { random: () => draws.shift() ?? 0.5 })
      namedFull(second)
      for (const ref of [o1, o2, o3]) second.served(of(second, ref), SIZE)
      assert.equal(pick(second)?.peer, id(o2), 'o2 wins its draw (0.4 < 1/2), o3 loses its own (0.9 >= 1/3)')
    })

    it('maxPieces is the whole pieces the holder has from the offset; Infinity when it has the whole blob', () => {
      const s = sources([o1])
      namedFull(s)
      s.served(of(s, o1), 13)
      assert.deepEqual(pick(s, 4), { peer: id(o1), maxPieces: 2 }, 'bytes 4..13: pieces 1 and 2 whole, piece 3 only in part')
      s.served(of(s, o1), SIZE)
      assert.deepEqual(pick(s, 4), { peer: id(o1), maxPieces: Infinity })
    })

    it('the short last piece: a holder with the whole blob has it', () => {
      const s = sources([o1])
      namedFull(s)
      s.served(of(s, o1), 10)
      assert.deepEqual(pick(s, 8, 10), { peer: id(o1), maxPieces: Infinity })
    })

    it('a holder whose bytes do not cover the whole first piece is not picked', () => {
      const s = sources([o1])
      s.served(of(s, o1), 6)
      assert.equal(pick(s, 4)?.peer, id(named))
      s.named.lanes = NAMED_HOLDER_LANES
      assert.equal(pick(s, 4), undefined)
      s.served(of(s, o1), 8)
      assert.deepEqual(pick(s, 4), { peer: id(o1), maxPieces: 1 })
    })

    it('served never lowers what a holder has', () => {
      const s = sources([o1])
      s.served(of(s, o1), 20)
      s.served(of(s, o1), 8)
      assert.equal(of(s, o1).have, 20)
    })
  })

  describe('the seeder', () => {
    it('is not picked while the named holder is live, even when it alone has the piece', () => {
      const s = sources([o1, o2], {}, id(o1))
      s.served(of(s, o1), SIZE)
      s.served(of(s, o2), 2)
      assert.equal(pick(s)?.peer, id(named), 'the named holder has a free lane')
      namedFull(s)
      assert.equal(pick(s), undefined, 'the named holder runs its lanes: nobody (o2 has part of piece 0 only)')
      s.named.lanes = 0
      s.busy(s.named)
      assert.equal(pick(s), undefined, 'the named holder cools off: still live, so still not the seeder')
      now = s.named.coolUntil
      for (let i = 1; i < MAX_SOURCE_FAILURES; i++) {
        s.faltered(s.named)
        assert.equal(s.named.gone, false)
        assert.equal(pick(s), undefined, `the named holder faltered ${i} time(s): cooling, not gone`)
        now = s.named.coolUntil
      }
      assert.equal(pick(s)?.peer, id(named), 'cooled: the named holder again')
      const alone = sources([o1], {}, id(o1))
      alone.served(of(alone, o1), SIZE)
      namedFull(alone)
      assert.equal(pick(alone), undefined, 'the seeder is the only other holder: nobody')
      assert.equal(pick(alone, 20), undefined, 'at any offset')
    })

    it('is picked once the named holder is gone or denied; not again when the named holder is live again', () => {
      const s = sources([o1], {}, id(o1))
      s.served(of(s, o1), SIZE)
      namedFull(s)
      assert.equal(pick(s), undefined)
      denied.add(id(named))
      assert.deepEqual(pick(s), { peer: id(o1), maxPieces: Infinity }, 'the named holder is denied')
      denied.clear()
      assert.equal(pick(s), undefined, 'the named holder is no longer denied: live again')
      s.failed(s.named)
      assert.deepEqual(pick(s), { peer: id(o1), maxPieces: Infinity }, 'the named holder is gone')
      of(s, o1).lanes++
      assert.equal(pick(s), undefined, 'one transfer per holder other than the named one, the seeder too')
      const faltering = sources([o1], {}, id(o1))
      faltering.served(of(faltering, o1), SIZE)
      for (let i = 0; i < MAX_SOURCE_FAILURES; i++) faltering.faltered(faltering.named)
      assert.equal(faltering.named.gone, true)
      assert.equal(pick(faltering)?.peer, id(o1), 'the named holder faltered MAX_SOURCE_FAILURES times: gone')
    })

    it('with the named holder gone: picked only when no other holder known to have the piece is free, even though it has the least', () => {
      const s = sources([o1, o2], {}, id(o1))
      s.failed(s.named)
      s.served(of(s, o1), 8)
      s.served(of(s, o2), SIZE)
      assert.deepEqual(pick(s), { peer: id(o2), maxPieces: Infinity }, 'not the seeder, which has less')
      of(s, o2).lanes++
      assert.deepEqual(pick(s), { peer: id(o1), maxPieces: 2 }, 'o2 runs a transfer already: the seeder')
      assert.equal(pick(s, 8), undefined, 'the seeder does not have piece 2 whole')
    })

    it('with the named holder gone: last whether it is listed first or last among the others', () => {
      for (const order of [[o1, o2, o3], [o3, o2, o1]]) {
        const s = sources(order, {}, id(o1))
        s.failed(s.named)
        for (const ref of [o1, o2, o3]) s.served(of(s, ref), SIZE)
        assert.equal(pick(s)?.peer, id(order[0] === o1 ? o2 : o3), 'the first non-seeder listed (ties keep the first with random 0.5)')
        of(s, o2).lanes++
        of(s, o3).lanes++
        assert.equal(pick(s)?.peer, id(o1))
      }
    })

    it('with the named holder gone: ties among the others are drawn without the seeder', () => {
      const s = sources([o1, o2, o3], { random: () => 0 }, id(o3))
      s.failed(s.named)
      for (const ref of [o1, o2, o3]) s.served(of(s, ref), SIZE)
      assert.equal(pick(s)?.peer, id(o2), 'random 0 takes the last of the equal holders: o2, not the seeder o3')
    })

    it('with the named holder gone: picked when the other holders cool off, are gone, denied, or have too little or an unknown part', () => {
      const s = sources([o1, o2, o3], {}, id(o1))
      s.failed(s.named)
      s.served(of(s, o1), SIZE)
      assert.equal(pick(s)?.peer, id(o1), 'o2 and o3: progress unknown')
      s.served(of(s, o2), 2)
      assert.equal(pick(s)?.peer, id(o1), 'o2 has part of piece 0 only')
      s.served(of(s, o2), SIZE)
      s.served(of(s, o3), SIZE)
      s.busy(of(s, o2))
      denied.add(id(o3))
      assert.equal(pick(s)?.peer, id(o1), 'o2 cools, o3 is denied')
      denied.clear()
      s.failed(of(s, o3))
      assert.equal(pick(s)?.peer, id(o1), 'o2 cools, o3 is gone')
      now = of(s, o2).coolUntil
      assert.equal(pick(s)?.peer, id(o2), 'o2 cooled: no longer the seeder')
    })

    it('the named holder comes before the seeder, and a holder that is not the seeder is picked while the named holder runs its lanes', () => {
      const s = sources([o1, o2], {}, id(o1))
      s.served(of(s, o1), SIZE)
      s.served(of(s, o2), SIZE)
      assert.equal(pick(s)?.peer, id(named))
      namedFull(s)
      assert.equal(pick(s)?.peer, id(o2), 'not the seeder: the named holder is live')
      of(s, o2).lanes++
      assert.equal(pick(s), undefined, 'o2 busy with this receiver, the named holder live: nobody, not the seeder')
    })
  })

  describe('busy, faltered and failed holders', () => {
    it('busy(s, have) cools the holder until coolUntil and updates what it has', () => {
      const s = sources([o1])
      const src = of(s, o1)
      s.busy(src, 12)
      assert.equal(src.have, 12, 'what it said it holds')
      assert.equal(src.coolUntil, now + HOLDER_BUSY_FIRST_MS, 'random 0.5: no jitter')
      namedFull(s)
      assert.equal(pick(s), undefined, 'not asked while it cools')
      now += HOLDER_BUSY_FIRST_MS - 1
      assert.equal(pick(s), undefined)
      now += 1
      assert.deepEqual(pick(s), { peer: id(o1), maxPieces: 3 })
      s.busy(src, 4)
      assert.equal(src.have, 12, 'a lower have does not lower it')
      s.busy(src)
      assert.equal(src.have, 12)
    })

    it("a busy holder's pauses double up to HOLDER_BUSY_MAX_MS", () => {
      const s = sources([o1])
      const src = of(s, o1)
      const pauses: number[] = []
      for (let i = 0; i < 8; i++) {
        s.busy(src)
        pauses.push(src.coolUntil - now)
      }
      const expected: number[] = []
      for (let p = HOLDER_BUSY_FIRST_MS; expected.length < 8; p = Math.min(2 * p, HOLDER_BUSY_MAX_MS)) expected.push(p)
      assert.deepEqual(pauses, expected)
      assert.equal(pauses.at(-1), HOLDER_BUSY_MAX_MS)
    })

    it('the pauses are jittered by ±50 % with random', () => {
      const draws = [0, 0.999, 0.25]
      const s = sources([o1], { random: () => draws.shift() ?? 0.5, busyFirstMs: 100, busyMaxMs: 10_000 })
      const src = of(s, o1)
      const pauses: number[] = []
      for (let i = 0; i < 3; i++) {
        s.busy(src)
        pauses.push(src.coolUntil - now)
      }
      assert.deepEqual(pauses, [50, Math.round(200 * 1.499), 300])
    })

    it('served resets the pauses to the first one', () => {
      const s = sources([o1])
      const src = of(s, o1)
      s.busy(src)
      s.busy(src)
      s.busy(src)
      s.served(src, 4)
      s.busy(src)
      assert.equal(src.coolUntil - now, HOLDER_BUSY_FIRST_MS)
    })

    it('faltered cools the holder; after MAX_SOURCE_FAILURES in a row it is gone', () => {
      const s = sources([o1])
      const src = of(s, o1)
      namedFull(s)
      s.served(src, SIZE)
      for (let i = 1; i < MAX_SOURCE_FAILURES; i++) {
        s.faltered(src)
        assert.equal(src.gone, false)
        assert.ok(src.coolUntil > now, 'it cools off like a busy one')
        assert.equal(pick(s), undefined)
        now = src.coolUntil
        assert.equal(pick(s)?.peer, id(o1), 'asked again once it cooled')
      }
      s.faltered(src)
      assert.equal(src.gone, true)
      now += 60_000
      assert.equal(pick(s), undefined)
    })

    it('served between failures resets the count', () => {
      const s = sources([o1])
      const src = of(s, o1)
      for (let round = 0; round < 3; round++) {
        for (let i = 1; i < MAX_SOURCE_FAILURES; i++) s.faltered(src)
        s.served(src, 8)
        assert.equal(src.failures, 0)
      }
      assert.equal(src.gone, false)
    })

    it('failed: the holder is gone at once and never picked again', () => {
      const s = sources([o1])
      const src = of(s, o1)
      s.served(src, SIZE)
      namedFull(s)
      assert.equal(pick(s)?.peer, id(o1))
      s.failed(src)
      assert.equal(src.gone, true)
      assert.equal(pick(s), undefined)
      s.named.lanes = 0
      assert.equal(pick(s)?.peer, id(named))
      s.failed(s.named)
      assert.equal(pick(s), undefined)
    })

    it('a denied peer is never picked and does not count as usable', () => {
      const s = sources([o1])
      s.served(of(s, o1), SIZE)
      namedFull(s)
      assert.equal(pick(s)?.peer, id(o1))
      denied.add(id(o1))
      assert.equal(pick(s), undefined)
      s.named.lanes = 0
      assert.equal(pick(s)?.peer, id(named))
      assert.equal(s.usable, true)
      denied.add(id(named))
      assert.equal(pick(s), undefined)
      assert.equal(s.usable, false)
      assert.equal(s.probeCandidate(), undefined)
    })

    it('usable while some holder may be asked, now or after a pause; false when all are gone', () => {
      const s = sources([o1])
      assert.equal(s.usable, true)
      s.busy(s.named)
      s.busy(of(s, o1))
      assert.equal(s.usable, true, 'cooling holders may be asked later')
      s.failed(s.named)
      assert.equal(s.usable, true)
      s.failed(of(s, o1))
      assert.equal(s.usable, false)
    })
  })

  describe('nextReady', () => {
    it('gives the earliest coolUntil of the cooling holders; undefined when none cools', () => {
      const s = sources([o1, o2])
      assert.equal(s.nextReady(), undefined)
      s.busy(of(s, o1))
      s.busy(of(s, o1))
      s.busy(of(s, o2))
      assert.equal(of(s, o1).coolUntil, now + 2 * HOLDER_BUSY_FIRST_MS)
      assert.equal(s.nextReady(), now + HOLDER_BUSY_FIRST_MS)
      now += HOLDER_BUSY_FIRST_MS
      assert.equal(s.nextReady(), now + HOLDER_BUSY_FIRST_MS, 'o2 is ready: o1 is the one still cooling')
      now += HOLDER_BUSY_FIRST_MS
      assert.equal(s.nextReady(), undefined)
    })

    it('a gone or denied holder that cools does not count', () => {
      const s = sources([o1, o2])
      s.busy(of(s, o1))
      s.busy(of(s, o2))
      s.busy(of(s, o2))
      s.failed(of(s, o1))
      assert.equal(s.nextReady(), now + 2 * HOLDER_BUSY_FIRST_MS)
      denied.add(id(o2))
      assert.equal(s.nextReady(), undefined)
    })
  })

  describe('probeCandidate', () => {
    it('never the named holder', () => {
      const s = sources([])
      assert.equal(s.probeCandidate(), undefined)
      now += 10 * PROBE_INTERVAL_MS
      assert.equal(s.probeCandidate(), undefined)
    })

    it('the holder probed longest ago, each not more often than PROBE_INTERVAL_MS', () => {
      const s = sources([o1, o2])
      assert.equal(s.probeCandidate()?.name, id(o1))
      assert.equal(of(s, o1).probedAt, now)
      assert.equal(s.probeCandidate()?.name, id(o2))
      assert.equal(s.probeCandidate(), undefined, 'both were just probed')
      now += PROBE_INTERVAL_MS - 1
      assert.equal(s.probeCandidate(), undefined)
      now += 1
      assert.equal(s.probeCandidate()?.name, id(o1))
      now += 10
      assert.equal(s.probeCandidate()?.name, id(o2), 'o2 was probed before o1 was again')
      assert.equal(s.probeCandidate(), undefined)
    })

    it('a holder whose probes find nothing new is asked half as often each time, up to PROBE_INTERVAL_MAX_MS; a useful answer resets it', () => {
      const s = sources([o1])
      const waits: number[] = []
      for (let k = 0; k < 5; k++) {
        const due = s.probeCandidate()
        assert.equal(due?.name, id(o1))
        s.probed(due, false)
        waits.push(of(s, o1).probeEvery)
        now += of(s, o1).probeEvery - 1
        assert.equal(s.probeCandidate(), undefined, `probe ${k + 2} is not due yet`)
        now += 1
      }
      assert.deepEqual(waits, [1, 2, 3, 4, 5].map(k => Math.min(PROBE_INTERVAL_MAX_MS, PROBE_INTERVAL_MS * 2 ** k)))
      const due = s.probeCandidate()
      assert.ok(due !== undefined)
      s.probed(due, true)
      assert.equal(of(s, o1).probeEvery, PROBE_INTERVAL_MS)
    })

    it('not a holder known to hold the whole blob: it has nothing left to say', () => {
      const s = sources([o1, o2])
      s.served(of(s, o1), SIZE)
      s.served(of(s, o2), SIZE - 1)
      assert.equal(s.probeCandidate(SIZE)?.name, id(o2))
      now += 10 * PROBE_INTERVAL_MAX_MS
      assert.equal(s.probeCandidate(SIZE)?.name, id(o2))
    })

    it('probeIntervalMs overrides PROBE_INTERVAL_MS', () => {
      const s = sources([o1], { probeIntervalMs: 50 })
      assert.equal(s.probeCandidate()?.name, id(o1))
      now += 49
      assert.equal(s.probeCandidate(), undefined)
      now += 1
      assert.equal(s.probeCandidate()?.name, id(o1))
    })

    it('not a holder with a transfer running, a cooling one, a gone or a denied one', () => {
      const s = sources([o1, o2, o3])
      of(s, o1).lanes = 1
      s.busy(of(s, o2))
      s.failed(of(s, o3))
      assert.equal(s.probeCandidate(), undefined)
      of(s, o1).lanes = 0
      denied.add(id(o1))
      assert.equal(s.probeCandidate(), undefined)
      now += HOLDER_BUSY_FIRST_MS
      assert.equal(s.probeCandidate()?.name, id(o2))
    })
  })
})
