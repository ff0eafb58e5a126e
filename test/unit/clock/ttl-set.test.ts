import assert from 'node:assert/strict'
import { TtlSet } from '../../../src/clock/ttl-set.js'
import { FakeClock } from '../fakes/clock.js'

describe('TtlSet: keys set aside for a while (deny-listed peers, refused repositories, bad bucket objects)', () => {
  it('a peer is denied from add until exactly durationMs later, then asked again', () => {
    const clock = new FakeClock()
    const denied = new TtlSet(1_000, clock)
    denied.add('PeerA')
    assert.equal(denied.has('PeerA'), true)
    assert.equal(denied.has('PeerB'), false)
    clock.advance(999)
    assert.equal(denied.has('PeerA'), true)
    clock.advance(1)
    assert.equal(denied.has('PeerA'), false)
  })

  it('adding a denied peer again restarts its period', () => {
    const clock = new FakeClock()
    const denied = new TtlSet(1_000, clock)
    denied.add('PeerA')
    clock.advance(800)
    denied.add('PeerA')
    clock.advance(800)
    assert.equal(denied.has('PeerA'), true)
  })

  it('list and size show only the peers still denied, and expired ones are forgotten', () => {
    const clock = new FakeClock()
    const denied = new TtlSet(1_000, clock)
    denied.add('PeerA')
    clock.advance(500)
    denied.add('PeerB')
    assert.deepEqual(denied.list(), ['PeerA', 'PeerB'])
    clock.advance(500)
    assert.deepEqual(denied.list(), ['PeerB'])
    assert.equal(denied.size, 1)
    clock.advance(500)
    assert.equal(denied.size, 0)
  })

  it('entries nobody asks about again are swept as new ones come: memory follows the live entries, not every key ever added', () => {
    const clock = new FakeClock()
    const denied = new TtlSet(1_000, clock)
    for (let i = 0; i < 20_000; i++) {
      clock.advance(10)
      denied.add(`key-${i}`)
    }
    // 100 live at a time (1 000 ms / 10 ms); the map is swept at twice the live ones, 1 024 at least.
    const held = (denied as unknown as { until: Map<string, number> }).until.size
    assert.ok(held <= 2 * 1024, `${held} entries held`)
    assert.equal(denied.size, 100)
  })

  it('without a clock it uses the system clock', () => {
    const denied = new TtlSet(60_000)
    denied.add('PeerA')
    assert.equal(denied.has('PeerA'), true)
    const expired = new TtlSet(-1)
    expired.add('PeerA')
    assert.equal(expired.has('PeerA'), false)
  })
})
