import '../../src/p2p/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createP2pNode, type P2pNode } from '../../src/p2p/node.js'
import { parseListenAddr } from '../../src/p2p/addresses.js'
import { ClaimService, type ClaimServiceInit } from '../../src/p2p/claim/service.js'
import { coordinatorsOf } from '../../src/p2p/claim/distance.js'
import type { Digest } from '../../src/oci/digest.js'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'

/** A node whose `stored` answers only once `slowUntil` (ms since the epoch) has passed: a loaded coordinator. */
interface Member {
  node: P2pNode
  claims: ClaimService
  id: string
  storedCalls: number
  slowUntil: number
}

/**
 * A coordinator that answered on a key and times out later is loaded, not gone (issue 23): the
 * asker asks it again rather than the next closest, which knows nothing of its leases and would
 * grant a second one (a 20-host herd fetched a layer twice so).
 */
describe('claim patience: a slow coordinator that answered on the key before is asked again', function () {
  this.timeout(60_000)
  const members: Member[] = []
  /** Short waits for the asker, so the test takes a second, not thirty. */
  const ASKER: ClaimServiceInit = { timeoutMs: 400, patientAsks: 2 }

  async function member (init: ClaimServiceInit = {}): Promise<Member> {
    const node = await createP2pNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [parseListenAddr(`/ip4/127.0.0.1/tcp/${await freePort()}`)],
      announce: [],
      bootstrap: [],
      mdns: false,
      swarmKey: undefined
    })
    const m: Member = { node, claims: undefined as unknown as ClaimService, id: node.peerId.toString(), storedCalls: 0, slowUntil: 0 }
    m.claims = new ClaimService({
      node,
      stored: async () => {
        m.storedCalls++
        const wait = m.slowUntil - Date.now()
        if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
        return false
      },
      log: pino({ level: 'silent' })
    }, init)
    await m.claims.start()
    members.push(m)
    return m
  }

  after(async () => {
    for (const m of members) {
      await m.claims.stop().catch(() => {})
      await m.node.stop()
    }
  })

  it('asked again while connected, it answers, and the next closest is never asked', async () => {
    const three = [await member(), await member(), await member()]
    // The asker is the farthest from the key: the other two are its coordinator and the next closest.
    const key = `sha256:${randomBytes(32).toString('hex')}` as Digest
    const order = coordinatorsOf(key, three.map(m => m.id))
    const [coordinator, next, asker] = order.map(id => three.find(m => m.id === id) as Member) as [Member, Member, Member]
    // The asker's waits are short; its service is replaced by one built with them.
    await asker.claims.stop()
    asker.claims = new ClaimService({ node: asker.node, stored: async () => false, log: pino({ level: 'silent' }) }, ASKER)
    await asker.claims.start()
    await asker.node.dial(coordinator.node.getMultiaddrs())
    await asker.node.dial(next.node.getMultiaddrs())
    await waitFor(async () => (await asker.claims.coordinators(key)).join() === order.join(), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the asker sees both others speak the claim protocol'
    })

    const first = await asker.claims.ask({ op: 'claim', key, pieces: true }, { signal: AbortSignal.timeout(10_000) })
    assert.equal(first?.coordinator, coordinator.id)
    assert.equal(first?.answer.status, 'fetch')

    // Loaded: its next answer takes two of the asker's timeouts and a bit.
    coordinator.slowUntil = Date.now() + 2.5 * (ASKER.timeoutMs ?? 0)
    const nextCalls = next.storedCalls
    const again = await asker.claims.ask({ op: 'claim', key, pieces: true }, { signal: AbortSignal.timeout(10_000) })
    assert.equal(again?.coordinator, coordinator.id, 'the coordinator that holds the lease answered')
    assert.equal(again?.answer.status, 'fetch', 'the same decision: the asker still holds the lease')
    assert.equal(next.storedCalls, nextCalls, 'the next closest was never asked')

    // A claim that reports the coordinator failed (it stalled a transfer too: hung, not loaded)
    // goes to the next closest after one timeout.
    coordinator.slowUntil = Date.now() + 2.5 * (ASKER.timeoutMs ?? 0)
    const reported = await asker.claims.ask(
      { op: 'claim', key, pieces: true, failed: [coordinator.id] },
      { signal: AbortSignal.timeout(10_000) }
    )
    assert.equal(reported?.coordinator, next.id)
  })
})
