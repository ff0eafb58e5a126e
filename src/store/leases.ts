import type { Digest } from '../oci/digest.js'

/** Reference counts of blobs being read or written; eviction skips any digest held here. */
export class Leases {
  private readonly counts = new Map<Digest, number>()

  acquire (digest: Digest): () => void {
    this.counts.set(digest, (this.counts.get(digest) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.counts.get(digest) ?? 1) - 1
      if (n <= 0) this.counts.delete(digest)
      else this.counts.set(digest, n)
    }
  }

  held (digest: Digest): boolean {
    return this.counts.has(digest)
  }
}
