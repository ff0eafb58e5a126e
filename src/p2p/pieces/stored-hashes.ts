import type { Digest } from '../../oci/digest.js'
import type { BlobHandle } from '../../store/roles.js'
import { hashPieces, type PieceHasher } from './piece-hasher.js'

/** Stored blobs whose piece hashes are kept in memory (32 bytes of hex per MiB: 64 KiB for 1 GiB). */
const MAX_ENTRIES = 256

/**
 * Piece hashes of stored blobs, computed on the first request by reading the file once (a blob
 * committed before it was asked for pieces, or fetched whole), then kept for the next receivers.
 * Concurrent requests for one blob share the one read.
 */
export class StoredPieceHashes {
  private readonly entries = new Map<Digest, Promise<PieceHasher>>()

  /**
   * The hashes of stored blob `digest`; `open` opens it (StoreReader.openRead) when they must be
   * computed: that read holds its own handle, so it outlives the request that started it.
   * @throws Error when the blob is no longer stored, or its file can't be read
   */
  async of (digest: Digest, open: () => Promise<BlobHandle | undefined>): Promise<PieceHasher> {
    let entry = this.entries.get(digest)
    if (entry === undefined) {
      entry = (async () => {
        const handle = await open()
        if (handle === undefined) throw new Error(`${digest} is no longer stored`)
        try {
          return await hashPieces(handle.stream())
        } finally {
          await handle.release()
        }
      })()
      this.entries.set(digest, entry)
      const mine = entry
      entry.catch(() => {
        if (this.entries.get(digest) === mine) this.entries.delete(digest)
      })
      // Oldest first: a Map iterates in insertion order.
      for (const key of this.entries.keys()) {
        if (this.entries.size <= MAX_ENTRIES) break
        this.entries.delete(key)
      }
    }
    return await entry
  }
}
