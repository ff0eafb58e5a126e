import assert from 'node:assert/strict'
import { routingTableSize } from '../../../src/p2p/routing-table.js'
import type { P2pNode } from '../../../src/p2p/node.js'

/** Only what routingTableSize reads of a node: its DHT service, with or without a routing table. */
function nodeWith (dht: object): P2pNode {
  return { services: { dht } } as unknown as P2pNode
}

describe('routingTableSize', () => {
  it("is the size of the single DHT's routing table", () => {
    assert.equal(routingTableSize(nodeWith({ routingTable: { size: 7 } })), 7)
  })

  it('is 0 when the DHT has no routing table (not started, or a multi-DHT)', () => {
    assert.equal(routingTableSize(nodeWith({})), 0)
  })
})
