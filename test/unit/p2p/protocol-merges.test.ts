import assert from 'node:assert/strict'
import type { Libp2pEvents, Peer, PeerData, PeerId, PeerStore, TypedEventTarget } from '@libp2p/interface'
import { PROTOCOL_MERGE_TTL_MS, skipRepeatedProtocolMerges } from '../../../src/p2p/protocol-merges.js'
import { newPeerId } from '../fakes/peer-network.js'

/** A peer store that records the merges that reached it (only what the wrapper touches). */
function fakeStore (): { store: PeerStore, merges: PeerData[], deletes: number } {
  const records = new Map<string, Set<string>>()
  const out = { merges: [] as PeerData[], deletes: 0, store: undefined as unknown as PeerStore }
  out.store = {
    merge: async (id: PeerId, data: PeerData): Promise<Peer> => {
      out.merges.push(data)
      const protocols = records.get(id.toString()) ?? new Set<string>()
      for (const p of data.protocols ?? []) protocols.add(p)
      records.set(id.toString(), protocols)
      return { id, protocols: [...protocols], addresses: [], metadata: new Map(), tags: new Map() }
    },
    delete: async (id: PeerId): Promise<void> => {
      out.deletes++
      records.delete(id.toString())
    }
  } as unknown as PeerStore
  return out
}

describe("skipRepeatedProtocolMerges: libp2p's per-stream peer-store write, once per peer and protocol", () => {
  let peer: PeerId
  let now: number
  let events: TypedEventTarget<Libp2pEvents>

  before(async () => {
    peer = await newPeerId()
  })
  beforeEach(() => {
    now = 1_000_000
    events = new EventTarget() as unknown as TypedEventTarget<Libp2pEvents>
  })

  function wrapped (): ReturnType<typeof fakeStore> {
    const f = fakeStore()
    skipRepeatedProtocolMerges(f.store, events, PROTOCOL_MERGE_TTL_MS, () => now)
    return f
  }

  it('a protocol already merged is not written again; a new one is', async () => {
    const f = wrapped()
    await f.store.merge(peer, { protocols: ['/a/1'] })
    const again = await f.store.merge(peer, { protocols: ['/a/1'] })
    assert.equal(f.merges.length, 1)
    assert.deepEqual(again.protocols, ['/a/1'], "the last real merge's record")
    await f.store.merge(peer, { protocols: ['/b/1'] })
    assert.equal(f.merges.length, 2)
    await f.store.merge(peer, { protocols: ['/a/1'] })
    await f.store.merge(peer, { protocols: ['/b/1'] })
    assert.equal(f.merges.length, 2)
  })

  it('a merge of anything but protocols always goes through', async () => {
    const f = wrapped()
    await f.store.merge(peer, { protocols: ['/a/1'] })
    await f.store.merge(peer, { protocols: ['/a/1'], metadata: { x: new Uint8Array([1]) } })
    await f.store.merge(peer, { metadata: { x: new Uint8Array([1]) } })
    assert.equal(f.merges.length, 3)
  })

  it('a change to the record (peer:update), a delete, or PROTOCOL_MERGE_TTL_MS make the next merge real', async () => {
    const f = wrapped()
    await f.store.merge(peer, { protocols: ['/a/1'] })
    events.dispatchEvent(
      new CustomEvent('peer:update', { detail: { peer: { id: peer, protocols: [], addresses: [], metadata: new Map(), tags: new Map() } } })
    )
    await f.store.merge(peer, { protocols: ['/a/1'] })
    assert.equal(f.merges.length, 2, 'after peer:update')
    await f.store.delete(peer)
    assert.equal(f.deletes, 1)
    await f.store.merge(peer, { protocols: ['/a/1'] })
    assert.equal(f.merges.length, 3, 'after delete')
    now += PROTOCOL_MERGE_TTL_MS - 1
    await f.store.merge(peer, { protocols: ['/a/1'] })
    assert.equal(f.merges.length, 3)
    now += 1
    await f.store.merge(peer, { protocols: ['/a/1'] })
    assert.equal(f.merges.length, 4, 'after the TTL')
  })

  it('wraps a store once', async () => {
    const f = fakeStore()
    skipRepeatedProtocolMerges(f.store, events)
    const merge = f.store.merge
    skipRepeatedProtocolMerges(f.store, events)
    assert.equal(f.store.merge, merge)
  })
})
