import type { AbortOptions } from '@libp2p/interface'
import assert from 'node:assert/strict'
import { tryProviders } from '../../../src/resolver/peer-lookup.js'
import { PeerFetchError } from '../../../src/p2p/fetch/errors.js'
import { MAX_PEER_ATTEMPTS } from '../../../src/p2p/constants.js'
import type { PeerRef } from '../../../src/p2p/fetch/client.js'
import { FakePeerNetwork, type FakePeer } from '../fakes/peer-network.js'
import { recordingLog } from '../fakes/recording-log.js'
import { content, peerInit } from './setup.js'

const { body, digest } = content(1000)

/** An attempt that fetches the whole blob from the peer and returns its label. */
function fetchAll (net: FakePeerNetwork, idleMs = 40) {
  return async (peer: PeerRef, { signal }: Required<AbortOptions>): Promise<string> => {
    const blob = await net.fetch(peer, { key: digest }, { signal, idleMs })
    try {
      for await (const _ of blob.body) {}
    } finally {
      blob.close()
    }
    return net.peer(peer.id.toString())?.label ?? '?'
  }
}

async function holders (net: FakePeerNetwork, ...labels: string[]): Promise<FakePeer[]> {
  const out: FakePeer[] = []
  for (const label of labels) out.push((await net.addPeer(label)).holdBlob(digest, body))
  return out
}

describe('tryProviders: peers first, within a budget, then the upstream', () => {
  it('tries providers in the order the DHT finds them and stops at the first that serves', async () => {
    const net = await FakePeerNetwork.create()
    await holders(net, 'a', 'b')
    const got = await tryProviders(peerInit(net), digest, {}, fetchAll(net))
    assert.equal(got, 'a')
    assert.deepEqual(net.fetchCounts(), { a: 1, b: 0 })
    assert.ok(net.lookups[0]?.aborted, 'the DHT query is stopped once a peer served')
  })

  it('a PeerFetchError (dead, busy, stalled, truncated) moves on to the next provider', async () => {
    const net = await FakePeerNetwork.create()
    const [dead, busy, stalled] = await holders(net, 'dead', 'busy', 'stalled', 'ok')
    dead?.behave({ kind: 'dead' })
    busy?.behave({ kind: 'busy' })
    stalled?.behave({ kind: 'stall', after: 100 })
    // Three attempts at most: the fourth provider is never asked.
    assert.equal(await tryProviders(peerInit(net), digest, {}, fetchAll(net)), undefined)
    assert.deepEqual(net.fetchCounts(), { dead: 1, busy: 1, stalled: 1, ok: 0 })
    // Without the dead one: busy, truncated, then the honest peer serves.
    stalled?.behave({ kind: 'truncate', after: 10 })
    dead?.drop(digest)
    assert.equal(await tryProviders(peerInit(net), digest, {}, fetchAll(net)), 'ok')
    assert.equal(net.openTransfers, 0, 'every transfer was closed')
  })

  it(`gives up after MAX_PEER_ATTEMPTS (${MAX_PEER_ATTEMPTS}) providers that could not serve`, async () => {
    const net = await FakePeerNetwork.create()
    const peers = await holders(net, 'p1', 'p2', 'p3', 'p4', 'p5')
    for (const p of peers.slice(0, 4)) p.behave({ kind: 'busy' })
    const got = await tryProviders(peerInit(net), digest, {}, fetchAll(net))
    assert.equal(got, undefined)
    assert.equal(peers.reduce((n, p) => n + p.fetches, 0), MAX_PEER_ATTEMPTS)
  })

  it('an attempt that returns undefined counts, and the next provider is tried', async () => {
    const net = await FakePeerNetwork.create()
    await holders(net, 'a', 'b')
    const tried: string[] = []
    const got = await tryProviders(peerInit(net), digest, {}, async peer => {
      tried.push(net.peer(peer.id.toString())?.label ?? '?')
      return tried.length === 2 ? 'second' : undefined
    })
    assert.equal(got, 'second')
    assert.deepEqual(tried, ['a', 'b'])
  })

  it('skips a peer denied while the lookup ran, without spending an attempt on it', async () => {
    const net = await FakePeerNetwork.create()
    net.providersMode = { skipDenied: false }
    const [liar] = await holders(net, 'liar', 'a', 'b', 'c')
    net.deny(liar?.name ?? '', 'sent wrong bytes')
    const tried: string[] = []
    const got = await tryProviders(peerInit(net), digest, {}, async peer => {
      tried.push(net.peer(peer.id.toString())?.label ?? '?')
      throw new PeerFetchError(peer.id.toString(), 'busy', 'busy')
    })
    assert.equal(got, undefined)
    assert.deepEqual(tried, ['a', 'b', 'c'], 'the denied peer is not an attempt; three others are')
  })

  it("an error that is not the peer's (the local disk) propagates, and the lookup is stopped", async () => {
    const net = await FakePeerNetwork.create()
    await holders(net, 'a', 'b')
    const disk = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })
    await assert.rejects(
      tryProviders(peerInit(net), digest, {}, async () => {
        throw disk
      }),
      disk
    )
    assert.equal(net.fetchCounts().b, 0)
    assert.ok(net.lookups[0]?.aborted)
  })

  it('a lookup that finds no provider within the lookup timeout is a miss, not an error', async () => {
    const net = await FakePeerNetwork.create()
    net.providersMode = { hang: true }
    const started = Date.now()
    const got = await tryProviders(peerInit(net, { lookupTimeoutMs: 30 }), digest, {}, fetchAll(net))
    assert.equal(got, undefined)
    assert.ok(Date.now() - started < 1000)
    assert.ok(net.lookups[0]?.aborted)
  })

  it('a slow DHT: providers found after the lookup timeout are not waited for', async () => {
    const net = await FakePeerNetwork.create()
    net.providersMode = { delayMs: 200 }
    await holders(net, 'late')
    const got = await tryProviders(peerInit(net, { lookupTimeoutMs: 20 }), digest, {}, fetchAll(net))
    assert.equal(got, undefined)
    assert.deepEqual(net.fetchCounts(), { late: 0 })
  })

  it('a failed DHT query is a miss, logged as a warning with its reason', async () => {
    const net = await FakePeerNetwork.create()
    net.providersMode = { fail: new Error('query failed: no peers in routing table') }
    const { log, lines } = recordingLog('warn')
    const got = await tryProviders(peerInit(net, { log }), digest, {}, fetchAll(net))
    assert.equal(got, undefined)
    assert.ok(lines.some(l => l.msg === 'provider lookup failed' && l.err === 'query failed: no peers in routing table'))
  })

  it('the overall budget cuts a slow peer short and goes to the upstream without trying more', async () => {
    const net = await FakePeerNetwork.create()
    const [slow] = await holders(net, 'slow', 'fast')
    slow?.behave({ kind: 'stall' })
    const started = Date.now()
    // The peer is allowed 5 s of silence, the whole lookup only 30 ms.
    const got = await tryProviders(peerInit(net), digest, { budgetMs: 30 }, fetchAll(net, 5000))
    assert.equal(got, undefined)
    assert.ok(Date.now() - started < 1000, 'the budget, not the idle timeout, ended it')
    assert.deepEqual(net.fetchCounts(), { slow: 1, fast: 0 })
  })

  it('a caller that cancels gets its abort back, not a miss', async () => {
    const net = await FakePeerNetwork.create()
    const [slow] = await holders(net, 'slow', 'fast')
    slow?.behave({ kind: 'stall' })
    const caller = new AbortController()
    const pending = tryProviders(peerInit(net), digest, { signal: caller.signal }, fetchAll(net, 5000))
    setImmediate(() => {
      caller.abort(new Error('shutting down'))
    })
    await assert.rejects(pending, PeerFetchError)
    assert.equal(net.fetchCounts().fast, 0)
  })
})
