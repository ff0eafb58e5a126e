import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection } from '@libp2p/interface'
import { checkBootstrapPeer, type BootstrapCheckInit } from '../../../src/diagnose/bootstrap.js'
import type { P2pNode } from '../../../src/p2p/node.js'

async function peerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** A P2pNode whose dial fails with `error`, or connects to `remote`; nothing else is used before. */
function fakeNode (dial: { error: string } | { remote: string }): { node: P2pNode, dials: string[] } {
  const dials: string[] = []
  const node = {
    dial: async (target: { toString: () => string }) => {
      dials.push(target.toString())
      if ('error' in dial) throw new Error(dial.error)
      return { remotePeer: { toString: () => dial.remote }, close: async () => {} } as unknown as Connection
    }
  } as unknown as P2pNode
  return { node, dials }
}

function init (node: P2pNode, swarmKey = false): BootstrapCheckInit {
  return { node, swarmKey, identified: async () => undefined, signal: new AbortController().signal }
}

/** A TCP listener on 127.0.0.1 that writes `greeting` to each connection (a pnet peer sends a 24-byte nonce). */
async function listener (greeting?: Buffer): Promise<{ port: number, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer(socket => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    if (greeting !== undefined) socket.write(greeting)
  })
  await new Promise<void>(resolve => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

describe('diagnose bootstrap: one bootstrap address, checked step by step', () => {
  const unused = fakeNode({ error: 'must not dial' })

  it('malformed addresses are unusable input, and the fix shows the form `p2p-cache id` prints', async () => {
    for (
      const [entry, reason] of [
        ['10.0.0.1:9000', /.+/],
        ['/ip4/10.0.0.1/tcp/9000/p2p/not-a-peer-id', /"not-a-peer-id" is not a peer ID/],
        ['/ip4/10.0.0.1/udp/9000', /expected \/ip4\|ip6\|dns4\|dns6\/<host>\/tcp\/<port>/],
        ['/dnsaddr/bootstrap.example.com', /a \/dnsaddr bootstrap address ends in \/p2p\/<peer id>/]
      ] as const
    ) {
      const result = await checkBootstrapPeer(entry, init(unused.node))
      assert.equal(result.malformed, true, entry)
      const [finding] = result.findings
      assert.equal(finding?.verdict, 'fail')
      assert.equal(finding?.subject, entry)
      assert.match(finding?.summary ?? '', /^malformed bootstrap address: /)
      assert.match(finding?.summary ?? '', reason)
      assert.match(finding?.fix ?? '', /`p2p-cache id`.*\/ip4\/<address>\/tcp\/9000\/p2p\/<peer id>/)
    }
    assert.equal(unused.dials.length, 0)
  })

  it('an address without /p2p/ is accepted for any peer; nothing listening is a TCP failure saying how to publish the port', async () => {
    const l = await listener()
    const port = l.port
    await l.close()
    const result = await checkBootstrapPeer(`/ip4/127.0.0.1/tcp/${port}`, init(unused.node))
    assert.equal(result.malformed, false)
    const [address, tcp] = result.findings
    assert.equal(address?.verdict, 'ok')
    assert.match(address?.summary ?? '', /any peer \(no \/p2p\/<id>\) at 127\.0\.0\.1:/)
    assert.equal(tcp?.check, 'bootstrap.tcp')
    assert.equal(tcp?.verdict, 'fail')
    assert.match(tcp?.summary ?? '', /refused: nothing listens on that port/)
    assert.match(tcp?.fix ?? '', new RegExp(`--network host\`, or \`-p ${port}:9000\``))
    assert.equal(result.findings.length, 2, 'stops at the first failure')
  })

  it('a DNS name is resolved first (dns4/localhost)', async () => {
    const l = await listener()
    const port = l.port
    await l.close()
    const result = await checkBootstrapPeer(`/dns4/localhost/tcp/${port}`, init(unused.node))
    assert.match(result.findings[0]?.summary ?? '', /^localhost resolves to 127\.0\.0\.1/)
    assert.equal(result.host, '127.0.0.1')
  })

  it('a peer in a private swarm, and this node without CACHE_SWARM_KEY: the handshake failure names the swarm key', async () => {
    const l = await listener(Buffer.alloc(24, 7))
    try {
      const { node } = fakeNode({ error: 'connection reset' })
      const result = await checkBootstrapPeer(`/ip4/127.0.0.1/tcp/${l.port}`, init(node, false))
      const tcp = result.findings.find(f => f.check === 'bootstrap.tcp')
      assert.match(tcp?.summary ?? '', /the peer is in a private swarm/)
      const handshake = result.findings.find(f => f.check === 'bootstrap.libp2p')
      assert.equal(handshake?.verdict, 'fail')
      assert.match(handshake?.summary ?? '', /this node has no CACHE_SWARM_KEY/)
      assert.match(handshake?.fix ?? '', /the same CACHE_SWARM_KEY/)
    } finally {
      await l.close()
    }
  })

  it('a swarm key here but none on the peer, and a plain handshake failure on the wrong port, are told apart', async () => {
    const l = await listener()
    try {
      const { node } = fakeNode({ error: 'protocol selection failed' })
      const keyed = await checkBootstrapPeer(`/ip4/127.0.0.1/tcp/${l.port}`, init(node, true))
      assert.match(
        keyed.findings.find(f => f.check === 'bootstrap.libp2p')?.summary ?? '',
        /this node has CACHE_SWARM_KEY but the peer is not in a private swarm/
      )
      const plain = await checkBootstrapPeer(`/ip4/127.0.0.1/tcp/${l.port}`, init(node, false))
      const finding = plain.findings.find(f => f.check === 'bootstrap.libp2p')
      assert.match(finding?.summary ?? '', /libp2p handshake failed after TCP connected: protocol selection failed/)
      assert.match(finding?.fix ?? '', /the peer's P2P port \(CACHE_P2P_PORT, default 9000\), not its HTTP port/)
    } finally {
      await l.close()
    }
  })

  it('another peer ID at the address: fail, the fix gives the address with the right ID', async () => {
    const l = await listener()
    try {
      const [expected, actual] = [await peerId(), await peerId()]
      const { node, dials } = fakeNode({ remote: actual })
      const result = await checkBootstrapPeer(`/ip4/127.0.0.1/tcp/${l.port}/p2p/${expected}`, init(node))
      assert.deepEqual(dials, [`/ip4/127.0.0.1/tcp/${l.port}`], 'dialled without the ID, to learn who is there')
      const finding = result.findings.find(f => f.check === 'bootstrap.libp2p')
      assert.equal(finding?.verdict, 'fail')
      assert.match(finding?.summary ?? '', new RegExp(`wrong peer ID: the node at this address is ${actual}, not ${expected}`))
      assert.match(
        finding?.fix ?? '',
        new RegExp(`^use /ip4/127\\.0\\.0\\.1/tcp/${l.port}/p2p/${actual} .*keep identity\\.key on a volume`)
      )
      assert.equal(result.connection, undefined)
    } finally {
      await l.close()
    }
  })
})
