import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ClaimTable, type Holder } from '../../../../src/p2p/claim/table.js'
import { CLAIM_CHAIN_FANOUT, CLAIM_OTHERS_MAX } from '../../../../src/p2p/claim/constants.js'
import { compareDistance, coordinatorsOf, keyKadId, peerKadId } from '../../../../src/p2p/claim/distance.js'
import { decodeClaimAnswer, decodeClaimRequest, encodeClaimFrame, type ClaimAnswer } from '../../../../src/p2p/claim/frames.js'
import { FrameError } from '../../../../src/p2p/json-frame.js'
import type { Digest } from '../../../../src/oci/digest.js'
import { FakeClock } from '../../fakes/clock.js'

const KEY = `sha256:${'ab'.repeat(32)}` as Digest
const a = { peer: 'PeerA', addrs: ['/ip4/127.0.0.1/tcp/1'] }
const b = { peer: 'PeerB', addrs: [] }
const c = { peer: 'PeerC', addrs: [] }

describe('claims: who fetches a digest from the upstream', () => {
  it('the first claim wins the lease; later claims join the holder; the holder renewing keeps it', () => {
    const table = new ClaimTable({ leaseMs: 1_000, now: () => 0 })
    assert.deepEqual(table.decide(a, { op: 'claim', key: KEY }, []), { status: 'fetch', leaseMs: 1_000 })
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY }, []), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: false })
    assert.equal(table.decide(a, { op: 'renew', key: KEY }, []).status, 'fetch')
  })

  it('a lease that was not renewed lapses: the next claim fetches', () => {
    let now = 0
    const table = new ClaimTable({ leaseMs: 1_000, now: () => now })
    table.decide(a, { op: 'claim', key: KEY }, [])
    now = 1_001
    assert.equal(table.decide(b, { op: 'claim', key: KEY }, []).status, 'fetch')
    assert.deepEqual(table.decide(c, { op: 'claim', key: KEY }, []), { status: 'join', peer: 'PeerB', addrs: [], committed: false })
  })

  it('a report against a fetching holder does not hand its lease over; its lapse does, to the next claimant (issue 23: a loaded holder is not a dead one)', () => {
    let now = 0
    const table = new ClaimTable({ leaseMs: 20_000, now: () => now })
    table.decide(a, { op: 'claim', key: KEY }, [])
    now = 15_000
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a]), {
      status: 'join',
      peer: 'PeerA',
      addrs: a.addrs,
      committed: false
    })
    assert.equal(table.decide(a, { op: 'renew', key: KEY }, []).status, 'fetch', 'the holder renews at 15 000: its lease runs to 35 000')
    now = 34_999
    assert.equal(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, []).status, 'join')
    now = 35_000
    assert.equal(
      table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a]).status,
      'fetch',
      "lapsed: the reporter fetches; the failed holder's provider record is skipped too"
    )
    assert.equal((table.decide(c, { op: 'claim', key: KEY }, []) as { peer: string }).peer, 'PeerB')
  })

  it('a holder that disconnects loses its leases at once, not its committed copies', () => {
    const table = new ClaimTable({ now: () => 0 })
    const other = `sha256:${'cd'.repeat(32)}` as Digest
    table.decide(a, { op: 'claim', key: KEY }, [])
    table.decide(a, { op: 'claim', key: other }, [])
    table.decide(a, { op: 'done', key: other }, [])
    assert.equal(table.dropHolder('PeerA'), 1)
    assert.equal(table.decide(b, { op: 'claim', key: KEY }, []).status, 'fetch')
    assert.deepEqual(table.decide(b, { op: 'claim', key: other }, []), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: true })
    assert.equal(table.dropHolder('PeerC'), 0)
  })

  it('done: later claims are sent to the holder as a committed copy; release forgets a lease', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(a, { op: 'claim', key: KEY }, [])
    assert.deepEqual(table.decide(a, { op: 'done', key: KEY }, []), { status: 'ok' })
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY }, []), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: true })
    const other = `sha256:${'cd'.repeat(32)}` as Digest
    table.decide(a, { op: 'claim', key: other }, [])
    table.decide(a, { op: 'release', key: other }, [])
    assert.equal(table.decide(b, { op: 'claim', key: other }, []).status, 'fetch')
  })

  it('once committed, joins take turns among the holder and the peers that stored it since (not the claimant, not failed ones)', () => {
    const table = new ClaimTable({ now: () => 0 })
    const d = { peer: 'PeerD', addrs: [] }
    table.decide(a, { op: 'claim', key: KEY }, [])
    // While A fetches, joiners form a chain (CLAIM_CHAIN_FANOUT 1): B reads from A, C from B.
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY, pieces: true }, []), {
      status: 'join',
      peer: 'PeerA',
      addrs: a.addrs,
      committed: false
    })
    assert.deepEqual(table.decide(c, { op: 'claim', key: KEY, pieces: true }, []), {
      status: 'join',
      peer: 'PeerB',
      addrs: b.addrs,
      committed: false,
      others: [{ peer: 'PeerA', addrs: a.addrs }],
      seeder: { peer: 'PeerA', addrs: a.addrs }
    })
    table.decide(a, { op: 'done', key: KEY }, [])
    const named = (from: typeof a, failed?: string[]): string | undefined => {
      const answer = table.decide(from, { op: 'claim', key: KEY, ...(failed !== undefined ? { failed } : {}) }, [a, b, c])
      return answer.status === 'join' ? answer.peer : undefined
    }
    assert.deepEqual([named(d), named(d), named(d), named(d)], ['PeerA', 'PeerB', 'PeerC', 'PeerA'])
    assert.notEqual(named(b), 'PeerB', 'never the claimant itself')
    const turns = new Set([named(d, ['PeerB']), named(d, ['PeerB']), named(d, ['PeerB'])])
    assert.ok(!turns.has('PeerB'), 'never a holder the claimant reported failed')
  })

  it('without a claim, a provider record (not the claimant itself) answers', () => {
    const table = new ClaimTable({ now: () => 0 })
    assert.deepEqual(table.decide(a, { op: 'claim', key: KEY }, [a, c]), { status: 'join', peer: 'PeerC', addrs: [], committed: true })
  })

  it('the table stays bounded: the oldest entries go first', () => {
    const table = new ClaimTable({ maxEntries: 2, now: () => 0 })
    for (const hex of ['01', '02', '03']) table.decide(a, { op: 'claim', key: `sha256:${hex.repeat(32)}` as Digest }, [])
    assert.equal(table.size, 2)
    assert.equal(table.decide(b, { op: 'claim', key: `sha256:${'01'.repeat(32)}` as Digest }, []).status, 'fetch')
  })

  it('every node orders the same peers the same way by XOR distance to the key', async () => {
    const ids = await Promise.all([1, 2, 3, 4, 5].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const order = coordinatorsOf(KEY, ids)
    assert.deepEqual(coordinatorsOf(KEY, [...ids].reverse()), order)
    const target = keyKadId(KEY)
    for (let i = 1; i < order.length; i++) {
      assert.ok(compareDistance(target, peerKadId(order[i - 1] as string), peerKadId(order[i] as string)) < 0)
    }
  })

  it('malformed frames are FrameErrors that say what was wrong', () => {
    assert.throws(
      () => decodeClaimRequest(new TextEncoder().encode('{"op":"steal","key":"x"}')),
      (err: Error) => err instanceof FrameError && /bad claim request/.test(err.message)
    )
    assert.throws(() => decodeClaimAnswer(new Uint8Array([0xff, 0xfe])), /not UTF-8 JSON/)
    assert.throws(() => decodeClaimRequest(encodeClaimFrame({ op: 'claim', key: KEY, failed: Array(9).fill('Qm') })), FrameError)
    assert.deepEqual(decodeClaimRequest(encodeClaimFrame({ op: 'claim', key: KEY })), { op: 'claim', key: KEY })
  })
})

describe('ClaimTable: leases, takeovers and expiry on a FakeClock', () => {
  const other = `sha256:${'ef'.repeat(32)}` as Digest
  let clock: FakeClock
  let table: ClaimTable

  beforeEach(() => {
    clock = new FakeClock()
    table = new ClaimTable({ leaseMs: 10_000, doneTtlMs: 60_000, now: () => clock.now() })
  })

  it('a lease lasts exactly leaseMs: held 1 ms before its end, free at its end', () => {
    table.decide(a, { op: 'claim', key: KEY }, [])
    clock.advance(9_999)
    assert.equal(table.decide(b, { op: 'claim', key: KEY }, []).status, 'join')
    clock.advance(1)
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY }, []), { status: 'fetch', leaseMs: 10_000 })
  })

  it('each renew extends the lease from the renewal, so a progressing download keeps it past leaseMs', () => {
    table.decide(a, { op: 'claim', key: KEY }, [])
    for (let i = 0; i < 5; i++) {
      clock.advance(8_000)
      assert.deepEqual(table.decide(a, { op: 'renew', key: KEY }, []), { status: 'fetch', leaseMs: 10_000 })
    }
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY }, []), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: false })
  })

  it('a holder that renews after another peer took over its lapsed lease is told to join the new holder', () => {
    table.decide(a, { op: 'claim', key: KEY }, [])
    clock.advance(10_000)
    table.decide(b, { op: 'claim', key: KEY }, [])
    assert.deepEqual(table.decide(a, { op: 'renew', key: KEY }, []), { status: 'join', peer: 'PeerB', addrs: [], committed: false })
  })

  it('a renew with no entry left keeps fetching: provider records are consulted only for claims', () => {
    assert.equal(table.decide(a, { op: 'renew', key: KEY }, [c]).status, 'fetch')
    assert.equal(table.decide(b, { op: 'claim', key: other }, [c]).status, 'join')
  })

  it('a claimant naming itself failed keeps its own lease', () => {
    table.decide(a, { op: 'claim', key: KEY }, [])
    assert.equal(table.decide(a, { op: 'claim', key: KEY, failed: ['PeerA'] }, []).status, 'fetch')
    assert.equal((table.decide(b, { op: 'claim', key: KEY }, []) as { peer: string }).peer, 'PeerA')
  })

  it('a committed holder reported failed is skipped too: the reporter fetches, or joins a provider that did not fail', () => {
    table.decide(a, { op: 'done', key: KEY }, [])
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a, c]), {
      status: 'join',
      peer: 'PeerC',
      addrs: [],
      committed: true
    })
    assert.equal(table.decide(b, { op: 'claim', key: other, failed: ['PeerA', 'PeerC'] }, [a, c]).status, 'fetch')
  })

  it('release by a peer that does not hold the lease changes nothing; release after done keeps the committed copy', () => {
    table.decide(a, { op: 'claim', key: KEY }, [])
    assert.deepEqual(table.decide(b, { op: 'release', key: KEY }, []), { status: 'ok' })
    assert.equal((table.decide(c, { op: 'claim', key: KEY }, []) as { peer: string }).peer, 'PeerA')
    table.decide(a, { op: 'done', key: KEY }, [])
    table.decide(a, { op: 'release', key: KEY }, [])
    assert.deepEqual(table.decide(c, { op: 'claim', key: KEY }, []), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: true })
  })

  it('a done record lasts doneTtlMs, then claims fall back to provider records or a new lease', () => {
    table.decide(a, { op: 'done', key: KEY }, [])
    clock.advance(59_999)
    assert.equal((table.decide(b, { op: 'claim', key: KEY }, []) as { peer: string }).peer, 'PeerA')
    clock.advance(1)
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY }, [c]), { status: 'join', peer: 'PeerC', addrs: [], committed: true })
    assert.equal(table.decide(b, { op: 'claim', key: KEY }, []).status, 'fetch')
  })

  it('eviction drops the least recently decided key: a renewed lease survives a full table', () => {
    const small = new ClaimTable({ maxEntries: 2, now: () => clock.now() })
    const k1 = `sha256:${'01'.repeat(32)}` as Digest
    const k2 = `sha256:${'02'.repeat(32)}` as Digest
    const k3 = `sha256:${'03'.repeat(32)}` as Digest
    small.decide(a, { op: 'claim', key: k1 }, [])
    small.decide(a, { op: 'claim', key: k2 }, [])
    small.decide(a, { op: 'renew', key: k1 }, [])
    small.decide(a, { op: 'claim', key: k3 }, [])
    assert.equal(small.size, 2)
    assert.equal(small.decide(b, { op: 'claim', key: k1 }, []).status, 'join', 'k1 was renewed, so k2 went')
    assert.equal(small.decide(b, { op: 'claim', key: k2 }, []).status, 'fetch')
  })
})

describe('ClaimTable: joiners form a chain while the key is fetched, and learn the other holders (issue 23)', () => {
  /** Base58 characters: peer names the claim frames accept. */
  const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
  const peer = (name: string): Holder => ({ peer: `Peer${name}`, addrs: [`/ip4/10.0.0.1/tcp/4001/p2p/Peer${name}`] })
  const [A, B, C, D, E, F] = ['A', 'B', 'C', 'D', 'E', 'F'].map(peer) as [Holder, Holder, Holder, Holder, Holder, Holder]

  /** A claim from `from`: the join answer's named peer and the names of its others ([] when none). */
  function join (table: ClaimTable, from: Holder, failed?: string[], providers: Holder[] = []): { peer: string, others: string[] } {
    const answer = table.decide(from, { op: 'claim', key: KEY, pieces: true, ...(failed !== undefined ? { failed } : {}) }, providers)
    assert.equal(answer.status, 'join', `${from.peer} joins`)
    const j = answer as Extract<ClaimAnswer, { status: 'join' }>
    return { peer: j.peer, others: (j.others ?? []).map(o => o.peer) }
  }

  it('the default fanout is 1: a chain', () => {
    assert.equal(CLAIM_CHAIN_FANOUT, 1)
  })

  it('while A fetches, B joins A, C joins B, D joins C; others are the fetching holder and earlier members, never the claimant nor the named one', () => {
    const table = new ClaimTable({ now: () => 0 })
    assert.equal(table.decide(A, { op: 'claim', key: KEY, pieces: true }, []).status, 'fetch')
    assert.deepEqual(table.decide(B, { op: 'claim', key: KEY, pieces: true }, []), {
      status: 'join',
      peer: 'PeerA',
      addrs: A.addrs,
      committed: false
    }, 'nobody else yet: no others')
    assert.deepEqual(table.decide(C, { op: 'claim', key: KEY, pieces: true }, []), {
      status: 'join',
      peer: 'PeerB',
      addrs: B.addrs,
      committed: false,
      others: [{ peer: 'PeerA', addrs: A.addrs }],
      seeder: { peer: 'PeerA', addrs: A.addrs }
    })
    assert.deepEqual(join(table, D), { peer: 'PeerC', others: ['PeerA', 'PeerB'] })
    assert.deepEqual(join(table, E), { peer: 'PeerD', others: ['PeerA', 'PeerB', 'PeerC'] })
  })

  it('a member that claims again is not named to itself nor listed in its own others', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    join(table, B)
    join(table, C)
    const again = join(table, B)
    assert.notEqual(again.peer, 'PeerB')
    assert.ok(!again.others.includes('PeerB'))
    assert.ok(!again.others.includes(again.peer))
  })

  it('with chainFanout 2, A gets two followers before B gets any, then B two, then C', () => {
    const table = new ClaimTable({ chainFanout: 2, now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    assert.deepEqual([B, C, D, E, F].map(p => join(table, p).peer), ['PeerA', 'PeerA', 'PeerB', 'PeerB', 'PeerC'])
  })

  it('a member reported failed is dropped: not named, not in others, and the next joiner is named to the next one in the chain', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    assert.equal(join(table, B).peer, 'PeerA')
    assert.equal(join(table, C).peer, 'PeerB')
    assert.deepEqual(join(table, D, ['PeerB']), { peer: 'PeerC', others: ['PeerA'] })
    assert.deepEqual(join(table, E), { peer: 'PeerD', others: ['PeerA', 'PeerC'] }, 'B stays dropped for joiners that did not report it')
  })

  it('dropHolder(peer) removes it from the members (it holds no lease: none ends)', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    join(table, B)
    join(table, C)
    assert.equal(table.dropHolder('PeerB'), 0)
    assert.deepEqual(join(table, D), { peer: 'PeerC', others: ['PeerA'] })
    assert.deepEqual(join(table, E), { peer: 'PeerD', others: ['PeerA', 'PeerC'] })
  })

  it('after done by the fetching holder, the members are kept and listed in the others of later joiners', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    join(table, B)
    join(table, C)
    join(table, D)
    assert.deepEqual(table.decide(A, { op: 'done', key: KEY }, []), { status: 'ok' })
    const answer = table.decide(E, { op: 'claim', key: KEY, pieces: true }, [])
    assert.deepEqual(answer, {
      status: 'join',
      peer: 'PeerA',
      addrs: A.addrs,
      committed: true,
      others: [B, C, D].map(h => ({ peer: h.peer, addrs: h.addrs }))
    })
    assert.deepEqual(join(table, F), { peer: 'PeerA', others: ['PeerB', 'PeerC', 'PeerD', 'PeerE'] })
  })

  /** A fetched KEY while `receivers` joined it in order (in pieces), then committed it. */
  function committedBy (...receivers: Holder[]): ClaimTable {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    for (const r of receivers) join(table, r)
    table.decide(A, { op: 'done', key: KEY }, [])
    return table
  }

  it('the committed holder reported failed: joins go to its receivers in turn, for every joiner, never a second lease while one is left', () => {
    const table = committedBy(B, C, D)
    // D timed out on A (a loaded machine): B and C hold A's pieces, so D joins one of them.
    const first = join(table, D, ['PeerA'])
    assert.ok(['PeerB', 'PeerC'].includes(first.peer), `named ${first.peer}`)
    assert.ok(!first.others.includes('PeerA'), 'the reported holder is not in the others')
    // The report stands for the joiners after it: the receivers (each joiner becomes one) take turns.
    const named = [E, F, E].map(p => ({ from: p.peer, named: join(table, p).peer }))
    assert.ok(named.every(n => n.named !== 'PeerA' && n.named !== n.from), JSON.stringify(named))
    assert.ok(new Set(named.map(n => n.named)).size > 1, 'in turn, not all on one receiver')
    // A joiner that reported every receiver ahead of it too is named the holder once more, then fetches.
    const last = table.decide(E, { op: 'claim', key: KEY, failed: ['PeerA', 'PeerB', 'PeerC', 'PeerD', 'PeerF'] }, [])
    assert.equal(last.status === 'join' ? last.peer : last.status, 'PeerA')
    assert.equal(table.decide(E, { op: 'claim', key: KEY, failed: ['PeerA', 'PeerB', 'PeerC', 'PeerD', 'PeerF'] }, []).status, 'fetch')
  })

  it('the committed holder reported failed by a receiver: only receivers that joined before it are named, never one that may read from it', () => {
    const table = committedBy(B, C, D)
    // C timed out on A: B joined before it; D joined after it and may follow it.
    for (let i = 0; i < 3; i++) assert.equal(join(table, C, ['PeerA']).peer, 'PeerB')
    // B, the first receiver, has nobody ahead but A: A is named once more, then B fetches.
    const again = table.decide(B, { op: 'claim', key: KEY, pieces: true, failed: ['PeerA'] }, [])
    assert.equal(again.status === 'join' ? again.peer : again.status, 'PeerA')
    assert.equal(table.decide(B, { op: 'claim', key: KEY, pieces: true, failed: ['PeerA'] }, []).status, 'fetch')
  })

  it('a committed holder the coordinator is still connected to is loaded, not gone: reports against it never hand out a lease', () => {
    const table = committedBy(B)
    const connected = (peer: string): boolean => peer === 'PeerA'
    for (let i = 0; i < 5; i++) {
      const again = table.decide(B, { op: 'claim', key: KEY, pieces: true, failed: ['PeerA'] }, [], connected)
      assert.equal(again.status === 'join' ? again.peer : again.status, 'PeerA', `report ${i + 1}`)
    }
    // Once its connection is gone, the next reports count: named once more, then the lease.
    assert.equal(table.decide(B, { op: 'claim', key: KEY, pieces: true, failed: ['PeerA'] }, []).status, 'join')
    assert.equal(table.decide(B, { op: 'claim', key: KEY, pieces: true, failed: ['PeerA'] }, []).status, 'fetch')
  })

  it('the committed holder reported failed with no receiver: a provider that did not fail; the last holder is named once more before the reporter fetches', () => {
    const table = new ClaimTable({ now: () => 0 })
    const P = peer('P')
    table.decide(A, { op: 'claim', key: KEY }, [])
    table.decide(A, { op: 'done', key: KEY }, [])
    assert.equal(join(table, B, ['PeerA'], [A, P]).peer, 'PeerP')
    const other = `sha256:${'ef'.repeat(32)}` as Digest
    table.decide(A, { op: 'claim', key: other }, [])
    table.decide(A, { op: 'done', key: other }, [])
    // A manifest's joiner timed out on a loaded holder: asked again first (CLAIM_LAST_HOLDER_REPORTS 2)...
    assert.deepEqual(table.decide(B, { op: 'claim', key: other, failed: ['PeerA'] }, [A]), {
      status: 'join',
      peer: 'PeerA',
      addrs: A.addrs,
      committed: true
    })
    // ...and a second report (this joiner again, or another) hands out the lease.
    assert.equal(table.decide(C, { op: 'claim', key: other, failed: ['PeerA'] }, [A]).status, 'fetch')
  })

  it('after done, provider records follow the members in others; the one in turn is not listed', () => {
    const table = new ClaimTable({ now: () => 0 })
    const P = peer('P')
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    join(table, B)
    table.decide(A, { op: 'done', key: KEY }, [])
    assert.deepEqual(join(table, C, undefined, [P]), { peer: 'PeerA', others: ['PeerB', 'PeerP'] })
    assert.deepEqual(join(table, D, undefined, [P]), { peer: 'PeerP', others: ['PeerA', 'PeerB', 'PeerC'] })
  })

  it('a renew gets no others: the holder keeps fetching, a holder that lost its lease is told whom to join', () => {
    let now = 0
    const table = new ClaimTable({ leaseMs: 1_000, now: () => now })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    join(table, B)
    join(table, C)
    assert.deepEqual(table.decide(A, { op: 'renew', key: KEY }, [C]), { status: 'fetch', leaseMs: 1_000 })
    now = 2_000
    assert.equal(table.decide(D, { op: 'claim', key: KEY, pieces: true }, []).status, 'fetch')
    join(table, E)
    assert.deepEqual(table.decide(A, { op: 'renew', key: KEY }, [C]), { status: 'join', peer: 'PeerD', addrs: D.addrs, committed: false })
    assert.deepEqual(table.decide(E, { op: 'renew', key: KEY }, []), { status: 'join', peer: 'PeerD', addrs: D.addrs, committed: false })
  })

  it('others are capped at CLAIM_OTHERS_MAX, however many members there are', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    const members = Array.from({ length: CLAIM_OTHERS_MAX + 10 }, (_, i) => ({ peer: `Member${BASE58[i] as string}`, addrs: [] }))
    let last: { peer: string, others: string[] } | undefined
    for (const m of members) last = join(table, m)
    assert.equal(last?.others.length, CLAIM_OTHERS_MAX)
    assert.deepEqual(
      last?.others,
      ['PeerA', ...members.slice(0, CLAIM_OTHERS_MAX - 1).map(m => m.peer)],
      'the fetching holder first, then the earliest members'
    )
  })

  it('provider records as others are capped at CLAIM_OTHERS_MAX too', () => {
    const table = new ClaimTable({ now: () => 0 })
    const providers = Array.from({ length: CLAIM_OTHERS_MAX + 5 }, (_, i) => ({ peer: `Provider${BASE58[i] as string}`, addrs: [] }))
    const answer = join(table, A, undefined, providers)
    assert.equal(answer.peer, 'Provider1')
    assert.equal(answer.others.length, CLAIM_OTHERS_MAX)
    assert.ok(!answer.others.includes(answer.peer))
  })

  it('answers with others go through the frame codec unchanged; a join with more than CLAIM_OTHERS_MAX others is a FrameError', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(A, { op: 'claim', key: KEY, pieces: true }, [])
    const answers: ClaimAnswer[] = []
    const members = Array.from({ length: CLAIM_OTHERS_MAX + 4 }, (_, i) => ({
      peer: `Member${BASE58[i] as string}`,
      addrs: [`/ip4/10.0.0.2/tcp/${4001 + i}`]
    }))
    for (const m of members) answers.push(table.decide(m, { op: 'claim', key: KEY, pieces: true }, []))
    assert.equal((answers.at(-1) as { others: unknown[] }).others.length, CLAIM_OTHERS_MAX)
    for (const answer of answers) assert.deepEqual(decodeClaimAnswer(encodeClaimFrame(answer)), answer)
    const tooMany = {
      status: 'join',
      peer: 'PeerA',
      addrs: [],
      committed: false,
      others: members.slice(0, CLAIM_OTHERS_MAX + 1).map(m => ({ peer: m.peer, addrs: [] }))
    } satisfies ClaimAnswer
    assert.throws(() => decodeClaimAnswer(encodeClaimFrame(tooMany)), FrameError)
    const justEnough = { ...tooMany, others: tooMany.others.slice(0, CLAIM_OTHERS_MAX) }
    assert.deepEqual(decodeClaimAnswer(encodeClaimFrame(justEnough)), justEnough)
  })
})
