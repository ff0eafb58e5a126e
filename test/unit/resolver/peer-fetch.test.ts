import assert from 'node:assert/strict'
import { fetchVerified, MemorySink, type DigestSink } from '../../../src/resolver/peer-fetch.js'
import { PeerFetchError } from '../../../src/p2p/fetch/errors.js'
import { DigestMismatchError, sha256Digest } from '../../../src/oci/digest.js'
import { apiKey } from '../../../src/keys/api-key.js'
import { FakePeerNetwork, type FakePeer } from '../fakes/peer-network.js'
import { content, newStats, peerInit } from './setup.js'

const { body, digest } = content(100_000)

async function setup (behaviour?: Parameters<FakePeer['behave']>[0]): Promise<{ net: FakePeerNetwork, peer: FakePeer }> {
  const net = await FakePeerNetwork.create()
  const peer = (await net.addPeer('p', behaviour)).holdBlob(digest, body, 'application/octet-stream')
  return { net, peer }
}

function rejectsWith (reason: string) {
  return (err: unknown): boolean => err instanceof PeerFetchError && err.reason === reason
}

describe('fetchVerified: one verified transfer from a peer', () => {
  it('writes every batch to the sink, verifies the digest and returns the header', async () => {
    const { net, peer } = await setup()
    const stats = newStats()
    const sink = new MemorySink(digest)
    const blob = await fetchVerified(peerInit(net, { stats }), peer.ref, {
      request: { key: digest },
      signal: new AbortController().signal,
      maxSize: 1_000_000,
      open: () => sink
    })
    assert.equal(blob.size, body.byteLength)
    assert.equal(blob.peer, peer.name)
    assert.ok(sink.body.equals(body))
    assert.equal(stats.snapshot().bytes_from_peers, body.byteLength)
    assert.equal(net.openTransfers, 0)
    assert.equal(net.denied.size, 0)
  })

  it('refuses a blob announced above the size bound before reading a byte', async () => {
    const { net, peer } = await setup()
    let opened = false
    await assert.rejects(
      fetchVerified(peerInit(net), peer.ref, {
        request: { key: digest },
        signal: new AbortController().signal,
        maxSize: 1000,
        open: () => {
          opened = true
          return new MemorySink(digest)
        }
      }),
      (err: unknown) => rejectsWith('too_large')(err) && /announced 100000 bytes, more than the 1000/.test((err as Error).message)
    )
    assert.equal(opened, false)
    assert.equal(net.openTransfers, 0)
  })

  it('a peer that sent every byte wrong is detected at the end and deny-listed', async () => {
    const { net, peer } = await setup({ kind: 'liar', at: 5 })
    const stats = newStats()
    await assert.rejects(
      fetchVerified(peerInit(net, { stats }), peer.ref, {
        request: { key: digest },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => new MemorySink(digest)
      }),
      rejectsWith('mismatch')
    )
    assert.match(net.denied.get(peer.name) ?? '', /does not match/)
    assert.equal(stats.snapshot().errors, 1)
  })

  it('a resumed transfer that does not verify denies nobody: which source lied is unknowable', async () => {
    const { net, peer } = await setup({ kind: 'liar' })
    const other = await net.addPeer('earlier')
    const contributors = new Set([other.name])
    const sink = new MemorySink(digest)
    await sink.write([body.subarray(0, 1000)])
    await assert.rejects(
      fetchVerified(peerInit(net), peer.ref, {
        request: { key: digest, start: 1000 },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => sink,
        contributors
      }),
      rejectsWith('mismatch')
    )
    assert.equal(net.denied.size, 0)
    assert.deepEqual([...contributors].sort(), [other.name, peer.name].sort())
  })

  it('a resumed transfer from the same peer that does not verify denies it', async () => {
    const { net, peer } = await setup({ kind: 'liar' })
    const sink = new MemorySink(digest)
    await sink.write([body.subarray(0, 1000)])
    await assert.rejects(
      fetchVerified(peerInit(net), peer.ref, {
        request: { key: digest, start: 1000 },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => sink,
        contributors: new Set([peer.name])
      }),
      rejectsWith('mismatch')
    )
    assert.ok(net.isDenied(peer.name))
  })

  it('a peer that closes early fails as truncated, and is not deny-listed', async () => {
    const { net, peer } = await setup({ kind: 'truncate', after: 50_000 })
    const sink = new MemorySink(digest)
    await assert.rejects(
      fetchVerified(peerInit(net), peer.ref, {
        request: { key: digest },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => sink
      }),
      rejectsWith('truncated')
    )
    assert.equal(sink.body.byteLength, 50_000)
    assert.equal(net.denied.size, 0)
    assert.equal(net.openTransfers, 0)
  })

  it('a peer that goes silent mid-transfer fails as stalled after the idle time', async () => {
    const { net, peer } = await setup({ kind: 'stall', after: 20_000 })
    const started = Date.now()
    await assert.rejects(
      fetchVerified(peerInit(net, { idleMs: 30 }), peer.ref, {
        request: { key: digest },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => new MemorySink(digest)
      }),
      (err: unknown) => rejectsWith('stalled')(err) && /sent nothing for 30 ms/.test((err as Error).message)
    )
    assert.ok(Date.now() - started < 1000)
    assert.equal(net.openTransfers, 0)
  })

  it('a sink that turns the answer down closes the transfer and passes its error on', async () => {
    const { net, peer } = await setup()
    const refusal = new PeerFetchError(peer.name, 'refused', 'no media type')
    await assert.rejects(
      fetchVerified(peerInit(net), peer.ref, {
        request: { key: digest },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => {
          throw refusal
        }
      }),
      refusal
    )
    assert.equal(net.openTransfers, 0)
  })

  it('an error of the local disk propagates as it is, and the peer is not blamed', async () => {
    const { net, peer } = await setup()
    const disk = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })
    const sink: DigestSink = {
      write: async () => {
        throw disk
      },
      verify: () => {}
    }
    await assert.rejects(
      fetchVerified(peerInit(net), peer.ref, {
        request: { key: digest },
        signal: new AbortController().signal,
        maxSize: 1_000_000,
        open: () => sink
      }),
      disk
    )
    assert.equal(net.denied.size, 0)
    assert.equal(net.openTransfers, 0)
  })

  it('an API record: the header carries it and its body verifies against the digest it names', async () => {
    const net = await FakePeerNetwork.create()
    const apiBody = Buffer.from('{"name":"repo"}')
    const key = apiKey('api.github.com /repos/o/r', 'application/json')
    const peer = (await net.addPeer('p')).holdApi(key, {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: sha256Digest(apiBody)
    }, apiBody)
    let sink: MemorySink | undefined
    const blob = await fetchVerified(peerInit(net), peer.ref, {
      request: { key },
      signal: new AbortController().signal,
      maxSize: 1_000_000,
      open: b => {
        sink = new MemorySink(b.api?.body ?? sha256Digest(Buffer.alloc(0)))
        return sink
      }
    })
    assert.equal(blob.api?.status, 200)
    assert.equal(sink?.body.toString(), '{"name":"repo"}')
  })
})

describe('MemorySink', () => {
  it('keeps what was written and verifies it against the expected digest', async () => {
    const sink = new MemorySink(digest)
    await sink.write([body.subarray(0, 10), body.subarray(10)])
    sink.verify('test')
    assert.ok(sink.body.equals(body))
  })

  it('throws DigestMismatchError naming the source when the bytes are wrong', async () => {
    const sink = new MemorySink(digest)
    await sink.write([body.subarray(1)])
    assert.throws(() => {
      sink.verify('peer X')
    }, (err: unknown) => err instanceof DigestMismatchError && /peer X/.test(err.message))
  })
})
