import type { Clock } from '../clock/clock.js'
import type { Digest } from '../oci/digest.js'
import type { BlobCatalog } from './catalog.js'

export interface ProtectionInit {
  catalog: Pick<BlobCatalog, 'get' | 'put' | 'exclusive' | 'entries'>
  /** Keep-until times are compared with its `now`. */
  clock: Clock
}

/**
 * What eviction may not take, set on the records: pins (an operator's, until lifted) and
 * keep-until times (pushes to the local namespace and their replicas, for CACHE_LOCAL_TTL).
 * Both survive a blob being stored again, and neither stops a DELETE.
 */
export class Protection {
  constructor (private readonly init: ProtectionInit) {}

  /** Pins `digest` against eviction, or lifts the pin. False when it is not stored. */
  async setPinned (digest: Digest, pinned: boolean): Promise<boolean> {
    const { catalog } = this.init
    return await catalog.exclusive(digest, async () => {
      const record = await catalog.get(digest)
      if (record === undefined) return false
      if (pinned) record.pinned = true
      else delete record.pinned
      await catalog.put(digest, record)
      return true
    })
  }

  /**
   * Keeps `digest` against eviction until `until` (ms since the epoch; a later time than one
   * already set wins). False when it is not stored.
   */
  async keepUntil (digest: Digest, until: number): Promise<boolean> {
    const { catalog } = this.init
    return await catalog.exclusive(digest, async () => {
      const record = await catalog.get(digest)
      if (record === undefined) return false
      if ((record.keepUntil ?? 0) >= until) return true
      record.keepUntil = until
      await catalog.put(digest, record)
      return true
    })
  }

  /** Bytes of the blobs kept against eviction now (`keepUntil`): what no eviction can free. */
  async keptBytes (): Promise<number> {
    const now = this.init.clock.now()
    let bytes = 0
    for await (const [, record] of this.init.catalog.entries()) if ((record.keepUntil ?? 0) > now) bytes += record.size
    return bytes
  }
}
