import { INDEX_TYPES } from '../oci/media-types.js'
import { RecentMap } from './recent-map.js'

/** One image as the status page lists it. */
export interface ImagePullCounts {
  /** Pulls: GETs of one of its image manifests (a multi-platform pull fetches one). */
  pulls: number
  /** Bytes of the image last pulled: its config and layers, as its manifest states them. */
  bytes: number
  /** The last tag asked for, if any. */
  tag: string | undefined
  /** When it was last pulled (ms since the epoch). */
  last_at: number
}

/** Images tallied at once; the ones not pulled longest go first. */
const MAX_IMAGES = 200

/**
 * Pulls and sizes per image (`upstream/repository`), for the status page's largest and most
 * pulled images. Not a Prometheus label: names are unbounded.
 */
export class ImagePulls {
  private readonly byImage = new RecentMap<ImagePullCounts>(MAX_IMAGES)

  constructor (private readonly now: () => number = Date.now) {}

  /** A client resolved `tag` of `image`: named with the image from now on. */
  tagged (image: string, tag: string): void {
    const counts = this.byImage.get(image)
    if (counts !== undefined) counts.tag = tag
    else this.byImage.touch(image, () => ({ pulls: 0, bytes: 0, tag, last_at: this.now() }))
  }

  /**
   * A client fetched a manifest of `image` whose Content-Type is `mediaType`. An image manifest
   * (OCI image spec §image manifest) is one pull, of the config and layer sizes it states; an
   * index is not parsed (a pull goes on to one of its manifests), and a body that is not an image
   * manifest counts nothing.
   */
  pulled (image: string, manifest: Buffer, mediaType: string): void {
    if (INDEX_TYPES.includes(mediaType)) return
    const bytes = imageBytes(manifest)
    if (bytes === undefined) return
    const counts = this.byImage.touch(image, () => ({ pulls: 0, bytes: 0, tag: undefined, last_at: 0 }))
    counts.pulls++
    counts.bytes = bytes
    counts.last_at = this.now()
  }

  snapshot (): Record<string, ImagePullCounts> {
    return Object.fromEntries([...this.byImage.entries()].map(([image, c]) => [image, { ...c }]))
  }
}

/** config.size + the layers' sizes of an image manifest; undefined for anything else (an index). */
function imageBytes (manifest: Buffer): number | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(manifest.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const { config, layers } = parsed as { config?: { size?: unknown }, layers?: unknown }
  if (!Array.isArray(layers) || typeof config?.size !== 'number') return undefined
  let bytes = config.size
  for (const layer of layers as Array<{ size?: unknown }>) if (typeof layer?.size === 'number') bytes += layer.size
  return bytes
}
