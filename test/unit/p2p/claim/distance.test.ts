import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { closerPeer, compareDistance, coordinatorsOf, isCloser, keyKadId, peerKadId } from '../../../../src/p2p/claim/distance.js'
import { tagKey } from '../../../../src/oci/tag-key.js'
import type { Digest } from '../../../../src/oci/digest.js'

const KEY = `sha256:${'ab'.repeat(32)}` as Digest
const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest()

/** XOR distance as a big-endian bigint, computed independently of compareDistance. */
function distance (a: Uint8Array, b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(a.map((x, i) => x ^ (b[i] ?? 0))).toString('hex')}`)
}

describe('claim coordinators: XOR distance between Kademlia ids', () => {
  let peers: string[]

  before(async () => {
    peers = await Promise.all(Array.from({ length: 8 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  })

  it("kad ids are sha256 of the multihash, as kad-dht computes them: a digest's is over 0x12 0x20 + its bytes", () => {
    assert.deepEqual(Buffer.from(keyKadId(KEY)), sha256(Buffer.concat([Buffer.from([0x12, 0x20]), Buffer.from('ab'.repeat(32), 'hex')])))
    const peer = peers[0] as string
    assert.deepEqual(Buffer.from(peerKadId(peer)), sha256(peerIdFromString(peer).toMultihash().bytes))
    assert.notDeepEqual(
      keyKadId(tagKey('docker.io', 'library/alpine', '3', 'index')),
      keyKadId(tagKey('docker.io', 'library/alpine', '3', 'single'))
    )
  })

  it('compareDistance is the big-endian XOR metric: the first differing byte decides', () => {
    const target = new Uint8Array([0b1010_0000, 0])
    assert.equal(compareDistance(target, target, target), 0)
    assert.ok(
      compareDistance(target, new Uint8Array([0b1010_0000, 0xff]), new Uint8Array([0b1011_0000, 0])) < 0,
      'a high byte outweighs every low byte'
    )
    assert.ok(
      compareDistance(target, new Uint8Array([0b0010_0000, 0]), new Uint8Array([0b1110_0000, 0])) > 0,
      'the top bit is the farthest'
    )
  })

  it('the coordinator is the candidate nearest the key, and the rest follow by distance', () => {
    for (const key of [KEY, `sha256:${'01'.repeat(32)}` as Digest, tagKey('ghcr.io', 'o/r', 'v1', 'index')]) {
      const target = keyKadId(key)
      const byBrute = [...peers].sort((x, y) => {
        const d = distance(peerKadId(x), target) - distance(peerKadId(y), target)
        return d < 0n ? -1 : d > 0n ? 1 : 0
      })
      assert.deepEqual(coordinatorsOf(key, peers), byBrute)
    }
  })

  it('every node gets the same order whatever order it lists peers in, and a peer listed twice appears once', () => {
    const order = coordinatorsOf(KEY, peers)
    assert.deepEqual(coordinatorsOf(KEY, [...peers].reverse()), order)
    assert.deepEqual(coordinatorsOf(KEY, [...peers, ...peers]), order)
    assert.deepEqual(coordinatorsOf(KEY, []), [])
  })

  it('throws on a candidate that is not a peer ID', () => {
    assert.throws(() => coordinatorsOf(KEY, [peers[0] as string, 'not-a-peer']))
  })

  it('isCloser and closerPeer (what a redirect, 1.2.0, is checked by): strictly closer by XOR distance, never self', () => {
    const order = coordinatorsOf(KEY, peers)
    const [first, second, last] = [order[0], order[1], order[order.length - 1]] as [string, string, string]
    assert.equal(isCloser(KEY, first, second), true)
    assert.equal(isCloser(KEY, second, first), false)
    assert.equal(isCloser(KEY, first, first), false, 'not closer than itself')
    assert.equal(closerPeer(KEY, last, order.slice(0, -1)), first, 'the closest of the others')
    assert.equal(closerPeer(KEY, first, order.slice(1)), undefined, 'self is the closest: no redirect')
    assert.equal(closerPeer(KEY, second, []), undefined)
    assert.throws(() => isCloser(KEY, 'not-a-peer', first))
  })
})
