import '../../src/p2p/polyfill.js'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createP2pNode, type P2pNode } from '../../src/p2p/node.js'
import { parseBootstrapAddr, parseListenAddr } from '../../src/p2p/addresses.js'
import { requestDialback } from '../../src/p2p/dialback.js'
import { freePort } from '../fixtures/ports.js'
import { startSwarmNode, stopAll, type SwarmNode } from '../fixtures/swarm.js'

/**
 * The dial-back service of a sidecar process (what `diagnose` uses to prove a port is
 * published): it dials only the IP the request comes from, and says what happened.
 */
describe('dial-back protocol', function () {
  this.timeout(60_000)
  let sidecar: SwarmNode
  let node: P2pNode
  let port: number

  before(async () => {
    sidecar = await startSwarmNode()
    port = await freePort()
    node = await createP2pNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [parseListenAddr(`/ip4/127.0.0.1/tcp/${port}`)],
      announce: [],
      bootstrap: [],
      mdns: false,
      swarmKey: undefined
    })
  })

  after(async () => {
    await node?.stop()
    await stopAll([sidecar])
  })

  const ask = async (addr: string): Promise<Awaited<ReturnType<typeof requestDialback>>> => {
    const connection = await node.dial(parseBootstrapAddr(sidecar.bootstrapAddr), { signal: AbortSignal.timeout(5_000) })
    return await requestDialback(connection, addr, { signal: AbortSignal.timeout(15_000) })
  }

  it('dials the asking node back on its own address', async () => {
    const answer = await ask(`/ip4/127.0.0.1/tcp/${port}/p2p/${node.peerId.toString()}`)
    assert.equal(answer.status, 'ok', answer.message)
    assert.ok((answer.rttMs ?? -1) >= 0)
  })

  it('reports a failed dial (nothing listens there)', async () => {
    const closed = await freePort()
    const answer = await ask(`/ip4/127.0.0.1/tcp/${closed}/p2p/${node.peerId.toString()}`)
    assert.equal(answer.status, 'failed')
    assert.ok((answer.message ?? '').length > 0)
  })

  it('refuses an address with another IP than the request comes from (no dialling third parties)', async () => {
    const answer = await ask(`/ip4/127.0.0.2/tcp/${port}/p2p/${node.peerId.toString()}`)
    assert.equal(answer.status, 'refused')
    assert.match(answer.message ?? '', /127\.0\.0\.1/)
  })

  it('answers bad_request to an address without a peer ID, and keeps running', async () => {
    const answer = await ask(`/ip4/127.0.0.1/tcp/${port}`)
    assert.equal(answer.status, 'bad_request')
    assert.equal((await ask(`/ip4/127.0.0.1/tcp/${port}/p2p/${node.peerId.toString()}`)).status, 'ok')
  })
})
