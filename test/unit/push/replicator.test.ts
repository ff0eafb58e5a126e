import assert from 'node:assert/strict'
import { Replicator, ReplicaPlacementError, type ReplicaNetwork } from '../../../src/push/replicator.js'
import type { HoldAnswer, HoldRequest } from '../../../src/p2p/hold/frames.js'
import { coordinatorsOf } from '../../../src/p2p/claim/distance.js'
import { sha256Digest, type Digest } from '../../../src/oci/digest.js'
import { Stats } from '../../../src/metrics/stats.js'
import { silentLog } from '../fakes/log.js'
import { newPeerId } from '../fakes/peer-network.js'

const d = (s: string): Digest => sha256Digest(Buffer.from(s))

/** Holders that answer as `answer` says, recording what each was asked. */
class FakeHolders implements ReplicaNetwork {
  readonly asked: Array<{ peer: string, request: HoldRequest }> = []
  answer: (peer: string, request: HoldRequest) => Promise<HoldAnswer> = async () => ({ status: 'held' })
  constructor (public peers: string[], public connected = peers.length) {}
  peersConnected (): number {
    return this.connected
  }
  async holders (): Promise<string[]> {
    return [...this.peers]
  }
  async hold (peer: string, request: HoldRequest): Promise<HoldAnswer> {
    this.asked.push({ peer, request })
    return await this.answer(peer, request)
  }
}

describe('replicator: a push is placed on other nodes before it is acknowledged', () => {
  let peers: string[]

  before(async () => {
    peers = await Promise.all([1, 2, 3].map(async () => (await newPeerId()).toString()))
  })

  const replicator = (network: ReplicaNetwork | undefined, replicas: number | undefined, timeoutMs = 2_000): Replicator =>
    new Replicator({
      network,
      replicas,
      timeoutMs,
      ttlMs: 60_000,
      stats: new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false }),
      log: silentLog()
    })

  it('auto: one replica with peers, on the peer closest to the repository; every push to it lands there; keys already placed are not sent again', async () => {
    const net = new FakeHolders(peers)
    const r = replicator(net, undefined)
    const keys = [{ digest: d('layer') }, { digest: d('manifest'), mediaType: 'application/vnd.oci.image.manifest.v1+json' }]
    const held = await r.place('local/app', keys, [{ key: 'rec:push-tag local/app:v1', value: '{}' }])
    assert.deepEqual(held, [coordinatorsOf('local/app', peers)[0]])
    assert.equal(net.asked.length, 2)
    assert.deepEqual([net.asked[0]?.request.keys.length, net.asked[0]?.request.records], [2, undefined], 'the content first')
    assert.deepEqual([net.asked[1]?.request.keys.length, net.asked[1]?.request.records?.length], [0, 1], 'then the tag')
    await r.place('local/app', [...keys, { digest: d('layer 2') }], [])
    assert.deepEqual(net.asked[2]?.request.keys, [{ digest: d('layer 2') }], 'only the new key')
    assert.equal(net.asked[2]?.peer, held[0])
  })

  it('auto alone: no replica, the push is kept here only; 0 wanted also without a network', async () => {
    const net = new FakeHolders([], 0)
    assert.deepEqual(await replicator(net, undefined).place('local/app', [{ digest: d('x') }], []), [])
    assert.deepEqual(await replicator(undefined, 2).place('local/app', [{ digest: d('x') }], []), [])
    assert.equal(net.asked.length, 0)
  })

  it('a holder that refuses is replaced by the next closest; N replicas go to N distinct peers', async () => {
    const net = new FakeHolders(peers)
    const order = coordinatorsOf('local/app', peers)
    net.answer = async peer => peer === order[0] ? { status: 'refused', message: 'full' } : { status: 'held' }
    const held = await replicator(net, 2).place('local/app', [{ digest: d('x') }], [])
    assert.deepEqual(new Set(held), new Set([order[1], order[2]]))
  })

  it("a push that can't be placed on every holder sends its tag to none", async () => {
    const net = new FakeHolders(peers.slice(0, 1))
    await assert.rejects(
      replicator(net, 2, 1_100).place('local/app', [{ digest: d('x') }], [{ key: 'rec:push-tag local/app:v1', value: '{}' }]),
      ReplicaPlacementError
    )
    assert.ok(net.asked.every(a => a.request.records === undefined))
  })

  it("fails with ReplicaPlacementError naming the holders' answers when too few can be placed in time", async () => {
    const net = new FakeHolders(peers.slice(0, 1))
    net.answer = async () => ({ status: 'failed', message: 'peer went away' })
    await assert.rejects(
      replicator(net, 1, 1_200).place('local/app', [{ digest: d('x') }], []),
      (err: Error) =>
        err instanceof ReplicaPlacementError && /0 of 1 replicas placed within 1 s/.test(err.message) && /peer went away/.test(err.message)
    )
    assert.ok(net.asked.length >= 2, 'asked again while the deadline allowed')
  })

  it('a blob uploaded early goes ahead (prefetch); the manifest PUT waits for it instead of sending it again', async () => {
    const net = new FakeHolders(peers)
    let release: () => void = () => {}
    const slow = new Promise<void>(resolve => {
      release = resolve
    })
    net.answer = async (_peer, request) => {
      if (request.keys.some(k => k.digest === d('big'))) await slow
      return { status: 'held' }
    }
    const r = replicator(net, 1)
    r.prefetch('local/app', { digest: d('big') })
    const deadline = Date.now() + 2_000
    while (net.asked.length === 0 && Date.now() < deadline) await new Promise(resolve => setImmediate(resolve))
    const placing = r.place('local/app', [{ digest: d('big') }, { digest: d('manifest') }], [])
    setImmediate(release)
    await placing
    assert.deepEqual(net.asked.map(a => a.request.keys.map(k => k.digest)), [[d('big')], [d('manifest')]])
  })

  it('a head start that failed is sent again by the manifest PUT', async () => {
    const net = new FakeHolders(peers)
    let first = true
    net.answer = async () => {
      if (first) {
        first = false
        return { status: 'failed', message: 'reset' }
      }
      return { status: 'held' }
    }
    const r = replicator(net, 1)
    r.prefetch('local/app', { digest: d('big') })
    const deadline = Date.now() + 2_000
    while (net.asked.length === 0 && Date.now() < deadline) await new Promise(resolve => setImmediate(resolve))
    await r.place('local/app', [{ digest: d('big') }], [])
    assert.equal(net.asked.length, 2)
  })
})
