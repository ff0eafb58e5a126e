import assert from 'node:assert/strict'
import { Announcer } from '../../../src/p2p/announcer.js'
import { keyCid } from '../../../src/p2p/content-id.js'
import type { P2pNode } from '../../../src/p2p/node.js'
import { waitFor } from '../../fixtures/wait.js'
import { silentLog } from '../fakes/log.js'

const DIGEST_A = `sha256:${'a'.repeat(64)}`
const DIGEST_B = `sha256:${'b'.repeat(64)}`

/** The parts of a libp2p node the announcer uses: provide, cancelReprovide, the routing table's size. */
function fakeNode (): { node: P2pNode, provided: string[] } {
  const provided: string[] = []
  const node = {
    contentRouting: {
      provide: async (cid: { toString: () => string }) => {
        provided.push(cid.toString())
      }
    },
    services: { dht: { routingTable: { size: 1 }, cancelReprovide: async () => {} } }
  }
  return { node: node as unknown as P2pNode, provided }
}

describe('Announcer', function () {
  const log = silentLog()

  it('announces at once without a busy predicate', async () => {
    const { node, provided } = fakeNode()
    const announcer = new Announcer({ node, log })
    announcer.announce(DIGEST_A)
    await waitFor(() => provided.length === 1 ? true : undefined, { timeoutMs: 2_000, what: 'the provide' })
    assert.deepEqual(provided, [keyCid(DIGEST_A).toString()])
    await announcer.stop()
  })

  it('waits while the node moves blobs, and announces once it is quiet', async () => {
    const { node, provided } = fakeNode()
    let busy = true
    const announcer = new Announcer({ node, log, busy: () => busy })
    announcer.announce(DIGEST_A)
    // Still busy: nothing goes out while the predicate says so (polled several times meanwhile).
    await waitFor(() => announcer.pending === 1 && provided.length === 0 ? true : undefined, { timeoutMs: 2_000, what: 'the key queued' })
    const until = Date.now() + 600
    await waitFor(() => Date.now() >= until ? true : undefined, { timeoutMs: 2_000, what: 'a few polls' })
    assert.deepEqual(provided, [])
    busy = false
    await waitFor(() => provided.length === 1 ? true : undefined, { timeoutMs: 5_000, what: 'the provide once quiet' })
    assert.equal(announcer.pending, 0)
    await announcer.stop()
  })

  it('an urgent announcement (a download in progress) goes out while the node is busy, with the others queued', async () => {
    const { node, provided } = fakeNode()
    const announcer = new Announcer({ node, log, busy: () => true })
    announcer.announce(DIGEST_A)
    announcer.announce(DIGEST_B, { now: true })
    await waitFor(() => provided.length === 2 ? true : undefined, { timeoutMs: 2_000, what: 'both provides' })
    assert.deepEqual([...provided].sort(), [keyCid(DIGEST_A).toString(), keyCid(DIGEST_B).toString()].sort())
    await announcer.stop()
  })

  it('once quiet, a long queue goes out batch after batch without waiting for quiet again', async () => {
    const { node, provided } = fakeNode()
    let looks = 0
    const announcer = new Announcer({
      node,
      log,
      busy: () => {
        looks++
        return false
      }
    })
    const keys = Array.from({ length: 40 }, (_, i) => `sha256:${i.toString(16).padStart(64, '0')}`)
    for (const key of keys) announcer.announce(key)
    await waitFor(() => provided.length === keys.length ? true : undefined, { timeoutMs: 10_000, what: 'all 40 provides' })
    // One quiet wait (1.5 s at a look every 250 ms) for five batches of 8, not one per batch.
    assert.ok(looks <= 12, `looked at the node ${looks} times`)
    await announcer.stop()
  })

  it('stop() ends a deferred wait at once', async () => {
    const { node, provided } = fakeNode()
    const announcer = new Announcer({ node, log, busy: () => true })
    announcer.announce(DIGEST_A)
    const started = Date.now()
    await announcer.stop()
    assert.ok(Date.now() - started < 1_000, 'stop waited for the quiet poll')
    assert.deepEqual(provided, [])
  })
})
