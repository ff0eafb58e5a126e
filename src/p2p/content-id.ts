import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createMultihash } from 'multiformats/hashes/digest'
import { createHash } from 'node:crypto'
import { sha256 } from 'multiformats/hashes/sha2'
import { digestHex, isDigest, type Digest } from '../oci/digest.js'

/**
 * The DHT key of a blob: CID v1, codec raw, multihash sha2-256 of the digest's own bytes. The
 * digest is the key, so whoever fetches by it can verify what a provider sends.
 */
export function blobCid (digest: Digest): CID {
  return CID.createV1(raw.code, createMultihash(sha256.code, Buffer.from(digestHex(digest), 'hex')))
}

/** Any other record (a tag resolution): CID v1 raw of sha256 over the normalized key. */
export function recordCid (key: string): CID {
  return CID.createV1(raw.code, createMultihash(sha256.code, createHash('sha256').update(key).digest()))
}

/** The DHT key of a fetch key: a blob digest or a record key. */
export function keyCid (key: string): CID {
  return isDigest(key) ? blobCid(key) : recordCid(key)
}
