import type { StoredResponse } from './records.js'
import { HOT_MAX_BYTES, HOT_MAX_ENTRIES } from './constants.js'

/** A stored response kept in memory; its policy is parsed once, so a hit costs no JSON-to-policy rebuild. */
export interface HotEntry extends StoredResponse {
  /** When the entry stops being fresh (ms since the epoch): the policy's timeToLive at store. */
  freshUntil: number
  /** The response's Vary names only headers the key holds: a fresh entry fits every request for it. */
  varyInKey: boolean
}

/**
 * Recently stored records with their bodies, by `<resource>\0<scope>\0<accept>`: a hit needs no index
 * read or file open. Bounded by HOT_MAX_BYTES and HOT_MAX_ENTRIES, oldest first out.
 */
export class HotRecords {
  private readonly entries = new Map<string, HotEntry>()
  private bytes = 0

  get (resource: string, scope: string, accept: string): HotEntry | undefined {
    return this.entries.get(`${resource}\0${scope}\0${accept}`)
  }

  set (resource: string, scope: string, accept: string, entry: HotEntry): void {
    if (entry.body.byteLength > HOT_MAX_BYTES / 16) return
    const key = `${resource}\0${scope}\0${accept}`
    this.delete(key)
    this.entries.set(key, entry)
    this.bytes += entry.body.byteLength
    // Map keeps insertion order; a store re-inserts.
    for (const [k, v] of this.entries) {
      if (this.bytes <= HOT_MAX_BYTES && this.entries.size <= HOT_MAX_ENTRIES) break
      this.entries.delete(k)
      this.bytes -= v.body.byteLength
    }
  }

  forget (resource: string, scope: string, accept: string): void {
    this.delete(`${resource}\0${scope}\0${accept}`)
  }

  private delete (key: string): void {
    const previous = this.entries.get(key)
    if (previous === undefined) return
    this.entries.delete(key)
    this.bytes -= previous.body.byteLength
  }
}
