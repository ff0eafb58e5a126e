import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import { SpaceAccount } from '../../../src/store/space-account.js'
import { StoreFullError } from '../../../src/store/errors.js'
import { FakeClock } from '../fakes/clock.js'
import { recordingLog } from '../fakes/recording-log.js'

describe('SpaceAccount: the bytes the store holds, and whether its filesystem is full', () => {
  it('counts what blobs add and remove', () => {
    const space = new SpaceAccount({ dir: tmpdir(), log: recordingLog().log, clock: new FakeClock(), size: 1000 })
    space.adjust(500)
    space.adjust(-1200)
    assert.equal(space.size, 300)
  })

  it('warns once per full episode, and says when there is room again', () => {
    const { log, messages } = recordingLog()
    const space = new SpaceAccount({ dir: tmpdir(), log, clock: new FakeClock(), size: 0 })
    space.markFull(new StoreFullError('/cache'))
    space.markFull(new StoreFullError('/cache'))
    assert.equal(space.full, true)
    space.roomReturned()
    space.roomReturned()
    assert.equal(space.full, false)
    assert.deepEqual(messages(), ['store filesystem full', 'store filesystem has room again'])
  })

  it('a store found full at open starts full without a second warning', () => {
    const { log, messages } = recordingLog()
    const clock = new FakeClock()
    const space = new SpaceAccount({ dir: tmpdir(), log, clock, size: 0, fullSince: clock.now() })
    assert.equal(space.full, true)
    space.markFull(new StoreFullError('/cache'))
    assert.deepEqual(messages(), [])
  })

  it('space() reads the free bytes, and clears the full state when there is room', async () => {
    const space = new SpaceAccount({ dir: tmpdir(), log: recordingLog().log, clock: new FakeClock(), size: 0 })
    space.markFull(new StoreFullError('/cache'))
    const { full, free } = await space.space()
    assert.equal(typeof free, 'number')
    assert.equal(full, (free ?? 0) < 16 * 1024 * 1024, 'the test filesystem has room, so the state clears')
  })

  it('space() on a directory it cannot read says nothing of free space and keeps the state', async () => {
    const space = new SpaceAccount({ dir: '/nonexistent/p2p-cache', log: recordingLog().log, clock: new FakeClock(), size: 0 })
    space.markFull(new StoreFullError('/nonexistent/p2p-cache'))
    assert.deepEqual(await space.space(), { full: true, free: undefined })
  })
})
