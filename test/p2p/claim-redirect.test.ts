import '../../src/p2p/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createP2pNode, type P2pNode } from '../../src/p2p/node.js'
import { parseListenAddr } from '../../src/p2p/addresses.js'
import { ClaimService } from '../../src/p2p/claim/service.js'
import { CLAIM_PROTOCOLS } from '../../src/p2p/claim/constants.js'
import { coordinatorsOf } from '../../src/p2p/claim/distance.js'
import type { Digest } from '../../src/oci/digest.js'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'

interface Member {
  node: P2pNode
  claims: ClaimService
  id: string
  has: Set<string>
}

/**
 * Views that disagree (issue 23): a node that does not know the peer closest to a key asks a
 * farther one, which redirects the claim to the closest peer it knows (claim 1.2.0), so both
 * askers get their answer from one coordinator and one lease is granted, not two.
 */
describe('claim redirects: askers with different views reach one coordinator', function () {
  this.timeout(60_000)
  const members: Member[] = []
  let key: Digest
  /** Closest to the key, then the middle one, then the farthest. */
  let closest: Member
  let middle: Member
  let farthest: Member

  async function member (): Promise<Member> {
    const node = await createP2pNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [parseListenAddr(`/ip4/127.0.0.1/tcp/${await freePort()}`)],
      announce: [],
      bootstrap: [],
      mdns: false,
      swarmKey: undefined
    })
    const has = new Set<string>()
    const claims = new ClaimService({ node, stored: async digest => has.has(digest), log: pino({ level: 'silent' }) })
    await claims.start()
    const m = { node, claims, id: node.peerId.toString(), has }
    members.push(m)
    return m
  }

  before(async () => {
    const three = [await member(), await member(), await member()]
    key = `sha256:${randomBytes(32).toString('hex')}` as Digest
    const order = coordinatorsOf(key, three.map(m => m.id))
    ;[closest, middle, farthest] = order.map(id => three.find(m => m.id === id) as Member) as [Member, Member, Member]
    // The middle node knows both others; the farthest knows only the middle one.
    await middle.node.dial(closest.node.getMultiaddrs())
    await farthest.node.dial(middle.node.getMultiaddrs())
    await waitFor(async () => (await middle.claims.coordinators(key))[0] === closest.id, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the middle node sees the closest one as the coordinator'
    })
    await waitFor(async () => (await farthest.claims.coordinators(key)).includes(middle.id), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the farthest node sees the middle one'
    })
    // Identify has told the middle node that the closest speaks 1.2.0.
    await waitFor(async () => (await middle.node.peerStore.get(closest.node.peerId)).protocols.includes(CLAIM_PROTOCOLS[0] as string), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'identify of the closest node'
    })
  })

  after(async () => {
    for (const m of members) {
      await m.claims.stop().catch(() => {})
      await m.node.stop()
    }
  })

  it('a node with no entry for the key redirects the claim to the closer peer, which grants the lease', async () => {
    const got = await farthest.claims.ask({ op: 'claim', key, pieces: true }, { signal: AbortSignal.timeout(20_000), to: middle.id })
    assert.equal(got?.coordinator, closest.id, "answered by the closest node, through the middle one's redirect")
    assert.equal(got?.answer.status, 'fetch')
    // The middle node asks the coordinator in its own view: the same one, which names the holder.
    const second = await middle.claims.ask({ op: 'claim', key, pieces: true }, { signal: AbortSignal.timeout(20_000) })
    assert.equal(second?.coordinator, closest.id)
    assert.equal(second?.answer.status, 'join')
    assert.equal(second?.answer.status === 'join' ? second.answer.peer : undefined, farthest.id)
  })

  /** A fresh key that the closest node coordinates in the middle node's view. */
  function keyOfClosest (): Digest {
    for (let i = 0; i < 256; i++) {
      const k = `sha256:${randomBytes(32).toString('hex')}` as Digest
      if (coordinatorsOf(k, [middle.id, closest.id])[0] === closest.id) return k
    }
    throw new Error('no key found')
  }

  it('a node that holds the key answers itself (it names itself)', async () => {
    const held = keyOfClosest()
    middle.has.add(held)
    const got = await farthest.claims.ask({ op: 'claim', key: held, pieces: true }, { signal: AbortSignal.timeout(20_000), to: middle.id })
    assert.equal(got?.coordinator, middle.id)
    assert.equal(got?.answer.status === 'join' ? got.answer.peer : got?.answer.status, middle.id)
  })

  it('a direct request is answered, and the entry it made keeps later claims on the key there', async () => {
    const k = keyOfClosest()
    const direct = await farthest.claims.ask(
      { op: 'claim', key: k, pieces: true, direct: true },
      { signal: AbortSignal.timeout(20_000), to: middle.id }
    )
    assert.equal(direct?.coordinator, middle.id)
    assert.equal(direct?.answer.status, 'fetch')
    const again = await closest.claims.ask({ op: 'claim', key: k, pieces: true }, { signal: AbortSignal.timeout(20_000), to: middle.id })
    assert.equal(again?.coordinator, middle.id, 'not redirected: it has an entry')
    assert.equal(again?.answer.status === 'join' ? again.answer.peer : again?.answer.status, farthest.id)
  })

  it('when the closer peer no longer answers claims, the claim is still answered once', async () => {
    const k = keyOfClosest()
    await closest.claims.stop()
    try {
      // Whether the middle node redirects (and the farthest falls back to asking it directly) or
      // already knows the closest stopped speaking the protocol, the middle node answers.
      const got = await farthest.claims.ask({ op: 'claim', key: k, pieces: true }, { signal: AbortSignal.timeout(30_000), to: middle.id })
      assert.equal(got?.coordinator, middle.id)
      assert.equal(got?.answer.status, 'fetch')
    } finally {
      await closest.claims.start()
    }
  })
})
