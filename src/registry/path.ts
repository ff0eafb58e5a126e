import { isDigest, type Digest } from '../oci/digest.js'
import { OciError } from '../oci/errors.js'
import { isRepositoryName, isTag } from '../oci/reference.js'

export type RegistryRoute =
  | { kind: 'base' }
  | { kind: 'manifest', name: string, reference: string, digest?: Digest }
  | { kind: 'blob', name: string, digest: Digest }
  | { kind: 'tags', name: string }
  | { kind: 'referrers', name: string, digest: Digest }

const ROUTE = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/
const TAGS = /^\/v2\/(.+)\/tags\/list$/

/**
 * Parses a pull-API path. The raw (undecoded) path is matched against the distribution name
 * grammar, so `..`, `%2e`, `%2f` and the like are refused before anything touches the disk.
 */
export function parseRegistryPath (pathname: string): RegistryRoute | undefined {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' }
  const tags = TAGS.exec(pathname)
  if (tags !== null) return { kind: 'tags', name: checkedName(tags[1] ?? '') }
  const m = ROUTE.exec(pathname)
  if (m === null) return undefined
  const [, rawName = '', kind, reference = ''] = m
  const name = checkedName(rawName)
  if (kind === 'referrers') {
    if (!isDigest(reference)) throw digestError(reference)
    return { kind: 'referrers', name, digest: reference }
  }
  if (kind === 'blobs') {
    if (!isDigest(reference)) throw digestError(reference)
    return { kind: 'blob', name, digest: reference }
  }
  if (isDigest(reference)) return { kind: 'manifest', name, reference, digest: reference }
  if (reference.includes(':')) throw digestError(reference)
  if (!isTag(reference)) {
    throw new OciError(400, 'TAG_INVALID', `invalid tag "${reference.slice(0, 200)}": expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`)
  }
  return { kind: 'manifest', name, reference }
}

/** A reference that is not a usable digest: a malformed sha256 one, or another algorithm. */
function digestError (reference: string): OciError {
  const shown = reference.slice(0, 100)
  const algorithm = reference.split(':')[0] ?? ''
  if (algorithm === 'sha256' || !reference.includes(':')) {
    return new OciError(400, 'DIGEST_INVALID', `malformed digest "${shown}": expected sha256: and 64 lowercase hex characters`)
  }
  return new OciError(
    400,
    'DIGEST_INVALID',
    `unsupported digest algorithm "${algorithm.slice(0, 20)}" in "${shown}": only sha256 is supported`
  )
}

function checkedName (name: string): string {
  if (!isRepositoryName(name)) {
    throw new OciError(
      400,
      'NAME_INVALID',
      `invalid repository name "${name.slice(0, 200)}": expected lowercase path components like library/alpine`
    )
  }
  return name
}
