import type { Digest } from '../oci/digest.js'

/**
 * Object keys under CACHE_S3_URL's prefix (the layout the README documents):
 * - `blobs/sha256/<hex>`: a blob or a manifest, by digest, one object per digest; a manifest's
 *   media type is the object's Content-Type.
 * - `records/<kind>/<name>`: a small JSON record; the name is URI-encoded (`encodeURIComponent`),
 *   which keeps a name's prefix a key's prefix (restore-key prefixes, tags/list).
 *   Kinds: `upstream-tag` (a tag an upstream resolved: the stale fallback), and the swarm's
 *   record kinds (`push-tag` pushed tags, `actions-cache` entries, `url` downloads).
 */
export function blobObjectKey (digest: Digest): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`
}

/** The key of record `name` of `kind` (see blobObjectKey for the layout). */
export function recordObjectKey (kind: string, name: string): string {
  return `${recordPrefix(kind)}${encodeURIComponent(name)}`
}

/** The key prefix of every record of `kind`. */
export function recordPrefix (kind: string): string {
  return `records/${kind}/`
}

/** The record name in `key` (one recordObjectKey made for `kind`); undefined for another key. */
export function recordName (kind: string, key: string): string | undefined {
  const prefix = recordPrefix(kind)
  if (!key.startsWith(prefix)) return undefined
  try {
    return decodeURIComponent(key.slice(prefix.length))
  } catch {
    return undefined
  }
}

/** The record kind of the tags upstreams resolved. */
export const UPSTREAM_TAG_KIND = 'upstream-tag'
