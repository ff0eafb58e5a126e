import assert from 'node:assert/strict'
import { PeerPieces, RecentRate } from '../../../src/metrics/peer-pieces.js'

describe('PeerPieces: pieces moved with each peer (issue 23)', () => {
  it('adds received and served pieces and bytes per peer', () => {
    const tally = new PeerPieces()
    tally.add('PeerA', 'received', 1, 1024)
    tally.add('PeerA', 'received', 2, 2048)
    tally.add('PeerA', 'served', 3, 3072)
    tally.add('PeerB', 'served', 1, 10)
    assert.deepEqual(tally.snapshot(), {
      PeerA: { received: 3, bytes_received: 3072, served: 3, bytes_served: 3072 },
      PeerB: { received: 0, bytes_received: 0, served: 1, bytes_served: 10 }
    })
  })

  it('keeps the 64 peers heard from most recently', () => {
    const tally = new PeerPieces()
    for (let i = 0; i < 70; i++) tally.add(`Peer${i}`, 'received', 1, 1)
    tally.add('Peer6', 'received', 1, 1)
    tally.add('Peer70', 'received', 1, 1)
    const peers = Object.keys(tally.snapshot())
    assert.equal(peers.length, 64)
    assert.ok(!peers.includes('Peer0') && !peers.includes('Peer7'), 'the stalest went first')
    assert.ok(peers.includes('Peer6'), 'one heard from again stays')
  })

  it('a snapshot is a copy', () => {
    const tally = new PeerPieces()
    tally.add('PeerA', 'served', 1, 1)
    const snap = tally.snapshot()
    tally.add('PeerA', 'served', 1, 1)
    assert.equal(snap.PeerA?.served, 1)
  })
})

describe('RecentRate: bytes per second over a sliding window', () => {
  it('averages what was added over the window, and forgets what is older', () => {
    let now = 1_000_000
    const rate = new RecentRate(() => now, 10_000)
    assert.equal(rate.perSecond, 0)
    rate.add(5_000)
    now += 50
    rate.add(5_000)
    now += 1_000
    rate.add(10_000)
    assert.equal(rate.perSecond, 2_000)
    now += 9_500
    assert.equal(rate.perSecond, 1_000, 'the first two samples left the window')
    now += 1_000
    assert.equal(rate.perSecond, 0)
  })
})
