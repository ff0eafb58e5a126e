import { createHash, createHmac } from 'node:crypto'

/**
 * The cache partition of a request: `anon`, or a keyed hash of its credential. The key is this
 * node's own secret, so a scope can't be computed from a leaked table of hashes, and the
 * credential itself is never stored or logged.
 */
export class Scopes {
  private readonly key: Buffer

  constructor (secret: Uint8Array) {
    this.key = createHash('sha256').update('p2p-cache api scope\0').update(secret).digest()
  }

  of (authorization: string | undefined): string {
    if (authorization === undefined || authorization.trim() === '') return 'anon'
    return createHmac('sha256', this.key).update(authorization.trim()).digest('hex').slice(0, 32)
  }
}
