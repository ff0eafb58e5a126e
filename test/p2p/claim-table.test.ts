import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ClaimTable } from '../../src/p2p/claim/table.js'
import { compareDistance, coordinatorsOf, keyKadId, peerKadId } from '../../src/p2p/claim/distance.js'
import { decodeClaimAnswer, decodeClaimRequest, encodeClaimFrame } from '../../src/p2p/claim/frames.js'
import { FrameError } from '../../src/p2p/json-frame.js'
import type { Digest } from '../../src/oci/digest.js'

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

  it('a holder reported failed loses its lease to the reporter; it is not named again', () => {
    const table = new ClaimTable({ now: () => 0 })
    table.decide(a, { op: 'claim', key: KEY }, [])
    assert.equal(table.decide(b, { op: 'claim', key: KEY, failed: ['PeerA'] }, [a]).status, 'fetch', 'the provider record of the failed peer is skipped too')
    assert.equal((table.decide(c, { op: 'claim', key: KEY }, []) as { peer: string }).peer, 'PeerB')
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
