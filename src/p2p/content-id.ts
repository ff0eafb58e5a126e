import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createMultihash } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { digestHex, type Digest } from '../oci/digest.js'

/**
 * The DHT key of a blob: CID v1, codec raw, multihash sha2-256 of the digest's own bytes. The
 * digest is the key, so whoever fetches by it can verify what a provider sends.
 */
export function blobCid (digest: Digest): CID {
  return CID.createV1(raw.code, createMultihash(sha256.code, Buffer.from(digestHex(digest), 'hex')))
}
