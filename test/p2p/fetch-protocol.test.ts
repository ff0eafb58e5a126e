import '../../src/p2p/polyfill.js'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { createP2pNode, type P2pNode } from '../../src/p2p/node.js'
import { parseBootstrapAddr, parseListenAddr } from '../../src/p2p/addresses.js'
import { FETCH_PROTOCOL } from '../../src/p2p/constants.js'
import { decodeResponseHeader, type FetchResponseHeader } from '../../src/p2p/fetch/frames.js'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { freePort } from '../fixtures/ports.js'
import { pushBlob, startSwarmNode, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'

function encodeVarint (n: number): Uint8Array {
  const out: number[] = []
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0))
    n = Math.floor(n / 128)
  } while (n > 0)
  return Uint8Array.from(out)
}

/** Everything the server sends until it closes or resets the stream. */
async function exchange (node: P2pNode, target: string, send: Uint8Array[]): Promise<{ bytes: Buffer, error: Error | undefined }> {
  const stream: Stream = await node.dialProtocol(parseBootstrapAddr(target), FETCH_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
  const chunks: Buffer[] = []
  const closed = new Promise<Error | undefined>(resolve => {
    stream.addEventListener('message', evt => {
      const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      chunks.push(Buffer.from(data))
    })
    stream.addEventListener('close', evt => {
      resolve(evt.error)
    })
  })
  for (const part of send) stream.send(part)
  await stream.close()
  let timer: NodeJS.Timeout | undefined
  const error = await Promise.race([
    closed,
    new Promise<Error>(resolve => {
      timer = setTimeout(() => resolve(new Error('server left the stream open')), 10_000)
    })
  ])
  clearTimeout(timer)
  return { bytes: Buffer.concat(chunks), error }
}

/** Splits a response into its header frame and the bytes after it. */
function parseResponse (bytes: Buffer): { header: FetchResponseHeader, body: Buffer } {
  let length = 0
  let shift = 0
  let i = 0
  for (;; i++) {
    const b = bytes[i] ?? 0
    length |= (b & 0x7f) << shift
    shift += 7
    if ((b & 0x80) === 0) break
  }
  const start = i + 1
  return { header: decodeResponseHeader(bytes.subarray(start, start + length)), body: bytes.subarray(start + length) }
}

function frame (json: unknown): Uint8Array[] {
  const body = Buffer.from(JSON.stringify(json))
  return [encodeVarint(body.byteLength), body]
}

describe('fetch protocol against bad frames', function () {
  this.timeout(60_000)
  let registry: Registry
  let server: SwarmNode
  let client: P2pNode
  let digest: string
  let blob: Buffer

  before(async () => {
    registry = await startRegistry()
    server = await startSwarmNode({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })
    // A blob in the server's store: pushed to the upstream, pulled once through the mirror.
    blob = Buffer.alloc(300_000, 7)
    digest = await pushBlob(registry.url, 'team/frames', blob)
    const res = await fetch(`${server.url}/v2/team/frames/blobs/${digest}`)
    assert.equal(res.status, 200)
    await res.arrayBuffer()
    client = await createP2pNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: [parseListenAddr(`/ip4/127.0.0.1/tcp/${await freePort()}`)],
      announce: [],
      bootstrap: [],
      mdns: false,
      swarmKey: undefined
    })
  })

  after(async () => {
    await client?.stop()
    await server?.destroy()
    await registry?.destroy()
  })

  const bad: Array<[string, Uint8Array[]]> = [
    ['garbage (an endless varint)', [Buffer.alloc(16, 0xff)]],
    ['an oversized frame', [encodeVarint(1_000_000), Buffer.alloc(2048, 0x41)]],
    ['a truncated frame', [encodeVarint(100), Buffer.from('{"key":')]],
    ['a frame that is not JSON', [encodeVarint(4), Buffer.from([0xc3, 0x28, 0xa0, 0xa1])]],
    ['a request for a bad digest', frame({ key: 'sha256:../../etc/passwd' })],
    ['a request with unknown fields', frame({ key: 'sha256:' + 'a'.repeat(64), forward: true })],
    ['a range that ends before it starts', frame({ key: 'sha256:' + 'a'.repeat(64), start: 10, end: 5 })]
  ]
  for (const [what, parts] of bad) {
    it(`answers ${what} with bad_request or a reset, and closes the stream`, async () => {
      const { bytes, error } = await exchange(client, server.bootstrapAddr, parts)
      assert.notEqual(error?.message, 'server left the stream open')
      if (bytes.byteLength > 0) assert.equal(parseResponse(bytes).header.status, 'bad_request')
      else assert.ok(error !== undefined, 'no answer means the stream was reset')
    })
  }

  it('answers not_found for a digest it does not have (never asks the upstream)', async () => {
    const missing = 'sha256:' + 'b'.repeat(64)
    const { bytes } = await exchange(client, server.bootstrapAddr, frame({ key: missing }))
    assert.equal(parseResponse(bytes).header.status, 'not_found')
    await registry.settled()
    assert.equal(registry.count({ pathIncludes: missing }), 0)
  })

  it('serves a byte range and a header-only request exactly', async () => {
    const ranged = parseResponse((await exchange(client, server.bootstrapAddr, frame({ key: digest, start: 1000, end: 201_000 }))).bytes)
    assert.deepEqual(ranged.header, { status: 'ok', size: blob.byteLength, start: 1000, length: 200_000 })
    assert.ok(ranged.body.equals(blob.subarray(1000, 201_000)))
    const headOnly = parseResponse((await exchange(client, server.bootstrapAddr, frame({ key: digest, start: 0, end: 0 }))).bytes)
    assert.equal(headOnly.header.length, 0)
    assert.equal(headOnly.body.byteLength, 0)
  })

  it('is still serving, with no upload or stream left open', async () => {
    const info = await waitFor(async () => {
      const res = await fetch(`${server.url}/api/p2p`)
      const body = await res.json() as { uploads: number }
      return body.uploads === 0 ? body : undefined
    }, { timeoutMs: 5_000, what: 'no upload in progress' })
    assert.equal(info.uploads, 0)
    assert.ok(server.proc.isRunning())
    await waitFor(() => client.getConnections().every(c => c.streams.filter(s => s.protocol === FETCH_PROTOCOL).length === 0), {
      timeoutMs: 5_000,
      what: 'every fetch stream closed'
    })
  })
})
