import { createHash, type Hash } from 'node:crypto'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/** A validated `sha256:<64 lowercase hex>` digest; the only algorithm the store keys on. */
export type Digest = `sha256:${string}`

const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/

export class InvalidDigestError extends P2pCacheError {
  readonly code = 'DIGEST_INVALID'
  constructor (readonly value: string) {
    super(`invalid digest "${value.slice(0, 100)}": expected sha256:<64 lowercase hex characters>`, { httpStatus: 400 })
  }
}

export class DigestMismatchError extends P2pCacheError {
  readonly code = 'DIGEST_MISMATCH'
  constructor (readonly expected: Digest, readonly actual: string, readonly source: string) {
    super(`content from ${source} does not match ${expected} (got ${actual}); nothing was stored`, { httpStatus: 502 })
  }
}

export function isDigest (value: string): value is Digest {
  return SHA256_DIGEST.test(value)
}

export function parseDigest (value: string): Digest {
  if (!isDigest(value)) throw new InvalidDigestError(value)
  return value
}

/** The hex part, used for file names and (later) DHT keys. */
export function digestHex (digest: Digest): string {
  return digest.slice('sha256:'.length)
}

export function sha256Digest (data: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

/** Incremental verifier for streamed content. */
export class DigestVerifier {
  private bytes = 0

  constructor (readonly expected: Digest, private readonly hash: Hash = createHash('sha256')) {}

  /** An independent verifier in the same state (same bytes hashed so far); this one is unchanged. */
  copy (): DigestVerifier {
    const copy = new DigestVerifier(this.expected, this.hash.copy())
    copy.bytes = this.bytes
    return copy
  }

  update (chunk: Uint8Array): void {
    this.hash.update(chunk)
    this.bytes += chunk.byteLength
  }

  get length (): number {
    return this.bytes
  }

  /** The digest of the bytes hashed so far; this verifier goes on unchanged. */
  actual (): Digest {
    return `sha256:${this.hash.copy().digest('hex')}`
  }

  /** Throws DigestMismatchError when the content hashed so far is not `expected`. */
  verify (source: string): void {
    const actual = `sha256:${this.hash.digest('hex')}`
    if (actual !== this.expected) throw new DigestMismatchError(this.expected, actual, source)
  }
}
