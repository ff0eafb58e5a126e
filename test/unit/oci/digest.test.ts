import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import {
  DigestMismatchError,
  DigestVerifier,
  InvalidDigestError,
  digestHex,
  isDigest,
  parseDigest,
  sha256Digest,
  type Digest
} from '../../../src/oci/digest.js'

const EMPTY = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

function digestOf (text: string): Digest {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`
}

describe('digest: sha256 content addresses', () => {
  it('accepts only sha256:<64 lowercase hex>, the one algorithm the store keys on', () => {
    assert.equal(isDigest(EMPTY), true)
    assert.equal(isDigest(EMPTY.toUpperCase()), false, 'uppercase algorithm and hex')
    assert.equal(isDigest(`sha256:${'A'.repeat(64)}`), false, 'uppercase hex')
    assert.equal(isDigest(EMPTY.slice(0, -1)), false, '63 hex characters')
    assert.equal(isDigest(`${EMPTY}0`), false, '65 hex characters')
    assert.equal(isDigest(`sha512:${'a'.repeat(128)}`), false, 'another algorithm')
    assert.equal(isDigest(`sha256:${'g'.repeat(64)}`), false, 'not hex')
    assert.equal(isDigest(`${EMPTY}\n`), false, 'a trailing newline')
    assert.equal(isDigest(`../${EMPTY}`), false, 'a path')
  })

  it('parseDigest throws an error saying what was given and what is expected, cut to 100 characters', () => {
    assert.equal(parseDigest(EMPTY), EMPTY)
    const long = `sha256:${'z'.repeat(500)}`
    assert.throws(() => parseDigest(long), (err: unknown) => {
      assert.ok(err instanceof InvalidDigestError)
      assert.equal(err.code, 'DIGEST_INVALID')
      assert.equal(err.value, long, 'the full value is kept for the caller')
      assert.match(err.message, /expected sha256:<64 lowercase hex characters>/)
      assert.ok(err.message.length < 200, 'the message does not echo 500 characters')
      return true
    })
  })

  it('sha256Digest and digestHex agree with the known digest of empty content', () => {
    assert.equal(sha256Digest(new Uint8Array()), EMPTY)
    assert.equal(digestHex(EMPTY), EMPTY.slice(7))
    assert.equal(sha256Digest(Buffer.from('hello')), digestOf('hello'))
  })
})

describe('DigestVerifier: streamed content checked before it is stored', () => {
  it('content hashed in chunks verifies against the digest of the whole, and counts its bytes', () => {
    const v = new DigestVerifier(digestOf('hello world'))
    v.update(Buffer.from('hello'))
    v.update(Buffer.from(' '))
    v.update(new Uint8Array())
    v.update(Buffer.from('world'))
    assert.equal(v.length, 11)
    assert.doesNotThrow(() => {
      v.verify('upstream')
    })
  })

  it('wrong bytes give DigestMismatchError naming the source, both digests, and that nothing was stored', () => {
    const expected = digestOf('the real layer')
    const v = new DigestVerifier(expected)
    v.update(Buffer.from('a lying peer'))
    assert.throws(() => {
      v.verify('peer 12D3KooW')
    }, (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError)
      assert.equal(err.code, 'DIGEST_MISMATCH')
      assert.equal(err.expected, expected)
      assert.equal(err.actual, digestOf('a lying peer'))
      assert.equal(err.source, 'peer 12D3KooW')
      assert.match(err.message, /from peer 12D3KooW/)
      assert.ok(err.message.includes(expected) && err.message.includes(digestOf('a lying peer')))
      assert.match(err.message, /nothing was stored/)
      return true
    })
  })

  it('a truncated body does not verify: a prefix is not the blob', () => {
    const v = new DigestVerifier(digestOf('complete'))
    v.update(Buffer.from('compl'))
    assert.throws(() => {
      v.verify('upstream')
    }, DigestMismatchError)
  })

  it('copy() verifies the bytes so far while the original goes on hashing, each unaffected by the other', () => {
    const original = new DigestVerifier(digestOf('abcdef'))
    original.update(Buffer.from('abc'))
    const prefix = original.copy()
    assert.equal(prefix.length, 3)
    assert.equal(prefix.expected, original.expected)

    original.update(Buffer.from('def'))
    assert.equal(prefix.length, 3, 'the copy did not see the later bytes')
    assert.throws(
      () => {
        prefix.verify('copy')
      },
      DigestMismatchError,
      'the copy holds only "abc"'
    )
    assert.doesNotThrow(() => {
      original.verify('original')
    }, 'finishing the copy left the original usable')

    const other = new DigestVerifier(digestOf('abcxyz'))
    other.update(Buffer.from('abc'))
    const branch = other.copy()
    branch.update(Buffer.from('xyz'))
    assert.equal(other.length, 3, 'bytes given to the copy do not reach the original')
    assert.doesNotThrow(() => {
      branch.verify('branch')
    })
  })
})
