import { isDigest, type Digest } from '../oci/digest.js'
import { OciError } from '../oci/errors.js'
import { isRepositoryName, isTag } from '../oci/reference.js'

export type RegistryRoute =
  | { kind: 'base' }
  | { kind: 'manifest', name: string, reference: string, digest?: Digest }
  | { kind: 'blob', name: string, digest: Digest }

const ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/

/**
 * Parses a pull-API path. The raw (undecoded) path is matched against the distribution name
 * grammar, so `..`, `%2e`, `%2f` and the like are refused before anything touches the disk.
 */
export function parseRegistryPath (pathname: string): RegistryRoute | undefined {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' }
  const m = ROUTE.exec(pathname)
  if (m === null) return undefined
  const [, name = '', kind, reference = ''] = m
  if (!isRepositoryName(name)) {
    throw new OciError(400, 'NAME_INVALID', `invalid repository name "${name.slice(0, 200)}": expected lowercase path components like library/alpine`)
  }
  if (kind === 'blobs') {
    if (!isDigest(reference)) throw new OciError(400, 'DIGEST_INVALID', `invalid digest "${reference.slice(0, 100)}": expected sha256:<64 lowercase hex>`)
    return { kind: 'blob', name, digest: reference }
  }
  if (isDigest(reference)) return { kind: 'manifest', name, reference, digest: reference }
  if (reference.includes(':')) throw new OciError(400, 'DIGEST_INVALID', `unsupported digest "${reference.slice(0, 100)}": only sha256 is supported`)
  if (!isTag(reference)) throw new OciError(400, 'TAG_INVALID', `invalid tag "${reference.slice(0, 200)}": expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`)
  return { kind: 'manifest', name, reference }
}
