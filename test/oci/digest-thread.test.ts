import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { DigestMismatchError, type Digest } from '../../src/oci/digest.js'
import { ThreadedDigestVerifier } from '../../src/oci/digest-thread.js'

const digestOf = (data: Buffer): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`

describe('ThreadedDigestVerifier: sha256 on the hash thread', () => {
  it('verifies many interleaved streams, each in its own order, whatever the chunking', async () => {
    const blobs = Array.from({ length: 6 }, (_, i) => randomBytes(3 * 1024 * 1024 + i * 4099))
    const verifiers = blobs.map(b => new ThreadedDigestVerifier(digestOf(b)))
    const chunk = 700_001
    for (let at = 0; at < Math.max(...blobs.map(b => b.byteLength)); at += chunk) {
      await Promise.all(blobs.map(async (b, i) => {
        const part = b.subarray(at, at + chunk)
        if (part.byteLength > 0) await verifiers[i]?.update([part.subarray(0, 1000), part.subarray(1000)])
      }))
    }
    await Promise.all(verifiers.map(async v => { await v.verify('test') }))
    assert.deepEqual(verifiers.map(v => v.length), blobs.map(b => b.byteLength))
  })

  it('a wrong byte is a DigestMismatchError naming the source; the chunks may be reused after update', async () => {
    const data = randomBytes(2 * 1024 * 1024)
    const v = new ThreadedDigestVerifier(digestOf(data))
    const reused = Buffer.from(data.subarray(0, 1024 * 1024))
    await v.update([reused])
    reused.fill(0) // the verifier copied it: this does not change what was hashed
    const tail = Buffer.from(data.subarray(1024 * 1024))
    tail[tail.length - 1] = (tail[tail.length - 1] ?? 0) ^ 1
    await v.update([tail])
    await assert.rejects(v.verify('peer X'), (err: unknown) => err instanceof DigestMismatchError && /peer X/.test(err.message))
  })

  it('an empty stream hashes to the empty digest; a disposed one is forgotten', async () => {
    await new ThreadedDigestVerifier(digestOf(Buffer.alloc(0))).verify('test')
    const gone = new ThreadedDigestVerifier(digestOf(Buffer.from('x')))
    await gone.update([Buffer.from('x')])
    gone.dispose()
    const next = new ThreadedDigestVerifier(digestOf(Buffer.from('y')))
    await next.update([Buffer.from('y')])
    await next.verify('test')
  })
})
