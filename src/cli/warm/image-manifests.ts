import { z } from 'zod'
import { isDigest } from '../../oci/digest.js'
import { formatPlatform, platformMatches, type Platform } from '../../oci/image-ref.js'
import { INDEX_TYPES } from '../../oci/media-types.js'
import { UnusableImageError } from './errors.js'

export const DescriptorSchema = z.object({
  mediaType: z.string().optional(),
  digest: z.string().refine(isDigest, 'expected sha256:<64 hex>'),
  size: z.number().int().nonnegative(),
  platform: z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional() }).optional(),
  annotations: z.record(z.string(), z.string()).optional()
})
export type Descriptor = z.infer<typeof DescriptorSchema>
export const IndexSchema = z.object({ manifests: z.array(DescriptorSchema) })
export const ImageManifestSchema = z.object({ config: DescriptorSchema, layers: z.array(DescriptorSchema) })
export type ImageManifest = z.infer<typeof ImageManifestSchema>

export type PlatformChoice = { all: true } | { all: false, platform: Platform }

export function isIndex (mediaType: string, json: unknown): boolean {
  if (INDEX_TYPES.includes(mediaType)) return true
  return typeof json === 'object' && json !== null && Array.isArray((json as { manifests?: unknown }).manifests) && !('layers' in json)
}

/** buildx attaches attestations to indexes as `unknown/unknown` entries; they are not platforms. */
function isAttestation (d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown'
}

export function chooseEntries (entries: Descriptor[], choice: PlatformChoice, image: string): Descriptor[] {
  const runnable = entries.filter(e => !isAttestation(e))
  if (choice.all) return runnable
  const want = choice.platform
  const matches = runnable.filter(e => e.platform !== undefined && platformMatches(want, e.platform))
  const best = matches.find(e => e.platform !== undefined && platformMatches({ ...want, variant: want.variant ?? '' }, e.platform)) ??
    matches[0]
  if (best !== undefined) return [best]
  const available = runnable.flatMap(e => e.platform === undefined ? [] : [formatPlatform(e.platform)])
  throw new UnusableImageError(
    `${image} has no ${formatPlatform(want)} image (it has: ${available.join(', ') || 'no platforms'})`,
    'pass --platform with one of those, or --all-platforms'
  )
}

/** A single-platform image names its platform only in its config. */
export function configPlatform (body: Buffer | undefined): Platform | undefined {
  if (body === undefined) return undefined
  try {
    const c = JSON.parse(body.toString('utf8')) as { os?: unknown, architecture?: unknown, variant?: unknown }
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return undefined
    return typeof c.variant === 'string'
      ? { os: c.os, architecture: c.architecture, variant: c.variant }
      : { os: c.os, architecture: c.architecture }
  } catch {
    return undefined
  }
}
