import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { blobCid, keyCid, recordCid } from '../../../src/p2p/content-id.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { tagKey } from '../../../src/oci/tag-key.js'
import { apiKey } from '../../../src/keys/api-key.js'

describe('content ids: the DHT keys of blobs, tags and API responses', () => {
  it("a blob's CID carries its digest itself, so any provider's bytes can be checked against it", () => {
    const digest = sha256Digest(Buffer.from('layer bytes'))
    const cid = blobCid(digest)
    assert.equal(cid.toString(), CID.parse(cid.toString()).toString(), 'round-trips through its string form')
    assert.equal(Buffer.from(cid.multihash.digest).toString('hex'), digest.slice('sha256:'.length))
    assert.ok(cid.toString().startsWith('bafkrei'), 'CID v1, raw, sha2-256 in base32')
  })

  it('keyCid keys a digest by the digest and anything else (tag keys, API keys) by sha256 of the key text', () => {
    const digest = sha256Digest(Buffer.from('x'))
    assert.ok(keyCid(digest).equals(blobCid(digest)))
    const tag = tagKey('docker.io', 'library/alpine', '3.20', 'index')
    const api = apiKey('api.github.com /repos/o/r', 'application/json')
    for (const key of [tag, api]) {
      const cid = keyCid(key)
      assert.ok(cid.equals(recordCid(key)))
      assert.deepEqual(Buffer.from(cid.multihash.digest), createHash('sha256').update(key).digest())
      assert.equal(cid.version, 1)
      assert.equal(cid.code, 0x55)
    }
  })

  it('different keys get different CIDs: index and single tag resolutions, Accept variants of one API path', () => {
    const cids = [
      keyCid(tagKey('docker.io', 'library/alpine', '3.20', 'index')),
      keyCid(tagKey('docker.io', 'library/alpine', '3.20', 'single')),
      keyCid(apiKey('api.github.com /repos/o/r', 'application/json')),
      keyCid(apiKey('api.github.com /repos/o/r', 'application/vnd.github.raw'))
    ].map(c => c.toString())
    assert.equal(new Set(cids).size, cids.length)
  })

  it('a string that only looks like a digest (upper case hex) is keyed as a record, not as a blob', () => {
    const upper = `sha256:${'AB'.repeat(32)}`
    assert.ok(keyCid(upper).equals(recordCid(upper)))
  })
})
