export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
export const DOCKER_MANIFEST_V1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws'

export const INDEX_TYPES: readonly string[] = [OCI_INDEX, DOCKER_MANIFEST_LIST]
export const MANIFEST_TYPES: readonly string[] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST]

/** What we ask upstream for when the client sent no Accept header of its own. */
export const DEFAULT_MANIFEST_ACCEPT = MANIFEST_TYPES.join(', ')

/** Distribution refuses manifests above 4 MiB; so do we, so a hostile upstream can't fill memory. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** Media types named in an Accept header (parameters and q-values dropped). */
export function acceptedTypes (accept: string | string[] | undefined): string[] {
  const values = Array.isArray(accept) ? accept : accept === undefined ? [] : [accept]
  return values
    .flatMap(v => v.split(','))
    .map(v => v.split(';')[0]?.trim().toLowerCase() ?? '')
    .filter(v => v.length > 0)
}

/**
 * Whether a client that sent `accept` can take a manifest of `mediaType`.
 * No Accept, or a wildcard, takes anything: registries answer such clients with what they have.
 */
export function accepts (accept: readonly string[], mediaType: string): boolean {
  if (accept.length === 0) return true
  return accept.some(a => a === mediaType || a === '*/*' || a === 'application/*')
}

/**
 * The Accept header to send upstream for a client's list: its concrete manifest types, or every
 * type we know when it named none (no Accept, or only wildcards — distribution answers 404 to an
 * OCI manifest unless OCI is named explicitly).
 */
export function upstreamAccept (accept: readonly string[]): string {
  const concrete = accept.filter(a => !a.includes('*'))
  return concrete.length > 0 ? concrete.join(', ') : DEFAULT_MANIFEST_ACCEPT
}

/** Tag resolutions differ by whether the client can take an index, so they are cached per class. */
export function acceptClass (accept: readonly string[]): 'index' | 'single' {
  if (accept.length === 0) return 'index'
  return INDEX_TYPES.some(t => accepts(accept, t)) ? 'index' : 'single'
}

/**
 * The `mediaType` a manifest declares in its JSON (covered by its digest), if it is one we
 * serve; undefined for anything else, invalid JSON included.
 */
export function declaredMediaType (body: Buffer): string | undefined {
  try {
    const value = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType
    return typeof value === 'string' && MANIFEST_TYPES.includes(value) ? value : undefined
  } catch {
    return undefined
  }
}

/**
 * The media type of a manifest served with a generic `Content-Type` (`application/octet-stream`,
 * `application/json`: some registries and proxies do): what the body declares, else what its
 * shape says (OCI image-spec: `manifests` makes an index, `config` + `layers` a manifest).
 * Undefined when the body is neither.
 */
export function manifestTypeOfBody (body: Buffer): string | undefined {
  const declared = declaredMediaType(body)
  if (declared !== undefined) return declared
  try {
    const json = JSON.parse(body.toString('utf8')) as { manifests?: unknown, config?: unknown, layers?: unknown }
    if (Array.isArray(json.manifests)) return OCI_INDEX
    if (typeof json.config === 'object' && json.config !== null && Array.isArray(json.layers)) return OCI_MANIFEST
  } catch {}
  return undefined
}

/** `stated` if it is a manifest type, else the type the body shows (see manifestTypeOfBody). */
export function manifestType (stated: string | undefined, body: Buffer): string | undefined {
  return stated !== undefined && MANIFEST_TYPES.includes(stated) ? stated : manifestTypeOfBody(body) ?? stated
}
