import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ClaimTable } from '../../../../src/p2p/claim/table.js'
import { compareDistance, coordinatorsOf, keyKadId, peerKadId } from '../../../../src/p2p/claim/distance.js'
import { decodeClaimAnswer, decodeClaimRequest, encodeClaimFrame } from '../../../../src/p2p/claim/frames.js'
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
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a]), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: false })
    assert.equal(table.decide(a, { op: 'renew', key: KEY }, []).status, 'fetch', 'the holder renews at 15 000: its lease runs to 35 000')
    now = 34_999
    assert.equal(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, []).status, 'join')
    now = 35_000
    assert.equal(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a]).status, 'fetch', 'lapsed: the reporter fetches; the failed holder\'s provider record is skipped too')
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
    // While A fetches, every joiner reads from A (only it has the bytes as they come).
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY }, [a]), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: false })
    assert.deepEqual(table.decide(c, { op: 'claim', key: KEY }, [a, b]), { status: 'join', peer: 'PeerA', addrs: a.addrs, committed: false })
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
    assert.throws(() => decodeClaimRequest(new TextEncoder().encode('{"op":"steal","key":"x"}')), (err: Error) => err instanceof FrameError && /bad claim request/.test(err.message))
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
    assert.deepEqual(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a, c]), { status: 'join', peer: 'PeerC', addrs: [], committed: true })
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
