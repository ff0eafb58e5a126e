import type { AbortOptions } from '@libp2p/interface'
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { isDigest, type Digest } from '../oci/digest.js'
import type { RecordKind, RecordTable } from '../records/swarm-records.js'
import { MAX_PREFIX_CANDIDATES } from './constants.js'

/** A finalized cache entry: its archive's digest and size, and when and by whom it was saved. */
export interface CacheEntry {
  key: string
  digest: Digest
  size: number
  /** ms since the epoch, on the saver's clock: restore-key prefixes take the newest. */
  createdAt: number
  writer: string
}

/** Where an entry lives: the repository (when known), the ref scope, the version. */
export interface EntryPlace {
  repository: string | undefined
  scope: string
  version: string
}

/** Longest record name: `rec:<kind> <name>` must stay within the fetch protocol's request. */
const MAX_NAME_CHARS = 600

const entrySchema = z.object({
  key: z.string().max(512),
  digest: z.string().refine(isDigest),
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  createdAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  writer: z.string().max(128)
})

/**
 * The `actions-cache` record kind: `<group>:<escaped key>` → CacheEntry, where the group is a
 * hash of (repository, scope, version): entries are immutable (the first write is kept, as on
 * GitHub), and listed per group for restore-key prefixes.
 */
export function cacheEntryKind (shared: boolean): RecordKind<CacheEntry> {
  return {
    kind: 'actions-cache',
    shared,
    parse: value => entrySchema.safeParse(value).data as CacheEntry | undefined,
    // A test job restores right after the build job saved.
    urgent: true,
    listed: () => true
  }
}

/** The listing group of a place: no colon, no whitespace. */
export function entryGroup (place: EntryPlace): string {
  return createHash('sha256').update(`${place.repository ?? '*'}\n${place.scope}\n${place.version}`).digest('hex').slice(0, 40)
}

/** A key as it appears in record names: `%` and whitespace escaped, so prefixes stay prefixes. */
function escapeKey (key: string): string {
  return key.replace(/[%\s]/gu, c => encodeURIComponent(c))
}

/** The record name of `key` at `place`; undefined when it would be too long to share. */
export function entryName (place: EntryPlace, key: string): string | undefined {
  const name = `${entryGroup(place)}:${escapeKey(key)}`
  return name.length <= MAX_NAME_CHARS ? name : undefined
}

/** An entry that matched a lookup, and how. */
export interface Match {
  entry: CacheEntry
  scope: string
  exact: boolean
}

/**
 * GitHub's restore order (cache service v2): in each readable scope, in the token's order, the
 * exact key first, then the key and each restore key as a prefix, the newest entry of a prefix
 * first. Entries of other nodes count (swarm records); a prefix looks at most
 * MAX_PREFIX_CANDIDATES entries of a group.
 */
export async function matchEntry (
  table: RecordTable<CacheEntry>,
  places: EntryPlace[],
  key: string,
  restoreKeys: string[],
  options: AbortOptions = {}
): Promise<Match | undefined> {
  for (const place of places) {
    const exactName = entryName(place, key)
    const exact = exactName === undefined ? undefined : await table.find(exactName, options)
    if (exact !== undefined) return { entry: exact.value, scope: place.scope, exact: true }
    const group = entryGroup(place)
    let names: string[] | undefined
    for (const prefix of [key, ...restoreKeys]) {
      names ??= await table.names(group, MAX_PREFIX_CANDIDATES, options)
      const wanted = `${group}:${escapeKey(prefix)}`
      let best: CacheEntry | undefined
      for (const name of names.filter(n => n.startsWith(wanted))) {
        const found = await table.find(name, options)
        if (found !== undefined && (best === undefined || found.value.createdAt > best.createdAt)) best = found.value
      }
      if (best !== undefined) return { entry: best, scope: place.scope, exact: false }
    }
  }
  return undefined
}
