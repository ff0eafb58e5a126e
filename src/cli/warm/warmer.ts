import PQueue from 'p-queue'
import { formatPlatform, manifestReference, type ImageReference, type Platform } from '../../oci/image-ref.js'
import { UnusableImageError } from './errors.js'
import {
  chooseEntries,
  configPlatform,
  ImageManifestSchema,
  IndexSchema,
  isIndex,
  type Descriptor,
  type ImageManifest,
  type PlatformChoice
} from './image-manifests.js'
import type { FetchedItem, WarmReporter } from './progress.js'
import type { BlobAnswer, ManifestAnswer, SidecarRegistry } from './sidecar-registry.js'

interface PlatformManifest {
  manifest: ImageManifest
  platform: Platform | undefined
}

/** Warms images through one sidecar, their requests sharing one bounded queue. */
export class Warmer {
  private readonly queue: PQueue
  /** A blob shared by several images (or platforms) is read once. */
  private readonly blobs = new Map<string, Promise<BlobAnswer>>()

  constructor (
    private readonly sidecar: SidecarRegistry,
    private readonly settings: { concurrency: number, choice: PlatformChoice },
    private readonly reporter: WarmReporter
  ) {
    this.queue = new PQueue({ concurrency: settings.concurrency })
  }

  private async fetchManifest (ref: ImageReference, reference: string): Promise<{ answer: ManifestAnswer, json: unknown }> {
    const answer = await this.queue.add(async () => await this.sidecar.manifest(ref, reference))
    let json: unknown
    try {
      json = JSON.parse(answer.body.toString('utf8'))
    } catch {
      throw new UnusableImageError(`manifest ${reference} of ${ref.input} is not JSON`)
    }
    this.reporter.item({
      image: ref.input,
      kind: isIndex(answer.mediaType, json) ? 'index' : 'manifest',
      digest: answer.digest,
      bytes: answer.body.byteLength,
      cache: answer.cache,
      source: answer.source
    })
    return { answer, json }
  }

  /** The image manifests to warm under `reference`: itself, or the chosen entries of an index (one level of nesting). */
  private async manifests (
    ref: ImageReference,
    reference: string,
    platform: Platform | undefined,
    depth: number
  ): Promise<PlatformManifest[]> {
    const { answer, json } = await this.fetchManifest(ref, reference)
    if (isIndex(answer.mediaType, json)) {
      if (depth > 1) throw new UnusableImageError(`${ref.input}: indexes nested deeper than two levels are not supported`)
      const index = IndexSchema.safeParse(json)
      if (!index.success) {
        throw new UnusableImageError(
          `${ref.input}: the index ${answer.digest} is malformed (${index.error.issues[0]?.message ?? 'invalid'})`
        )
      }
      const entries = chooseEntries(index.data.manifests, this.settings.choice, ref.input)
      const nested = await Promise.all(entries.map(async e => await this.manifests(ref, e.digest, e.platform, depth + 1)))
      return nested.flat()
    }
    const manifest = ImageManifestSchema.safeParse(json)
    if (!manifest.success) {
      throw new UnusableImageError(
        `${ref.input}: ${answer.mediaType || 'the manifest'} ${answer.digest} is not an OCI or Docker schema 2 image manifest`,
        'schema 1 images are not supported; push the image again with a current docker or skopeo'
      )
    }
    return [{ manifest: manifest.data, platform }]
  }

  private blob (ref: ImageReference, d: Descriptor, kind: 'config' | 'layer'): Promise<BlobAnswer> {
    const key = `${ref.host ?? ''}|${d.digest}`
    let pending = this.blobs.get(key)
    if (pending === undefined) {
      this.reporter.expect(d.size)
      pending = this.queue.add(async () => {
        const answer = await this.sidecar.blob(ref, d, kind === 'config', n => {
          this.reporter.received(n)
        })
        this.reporter.item({ image: ref.input, kind, digest: d.digest, bytes: answer.bytes, cache: answer.cache, source: answer.source })
        return answer
      })
      this.blobs.set(key, pending)
    }
    return pending
  }

  async warm (ref: ImageReference): Promise<void> {
    const started = performance.now()
    const manifests = await this.manifests(ref, manifestReference(ref), undefined, 0)
    const wanted = new Map<string, { d: Descriptor, kind: 'config' | 'layer' }>()
    for (const { manifest } of manifests) {
      wanted.set(manifest.config.digest, { d: manifest.config, kind: 'config' })
      for (const layer of manifest.layers) if (!wanted.has(layer.digest)) wanted.set(layer.digest, { d: layer, kind: 'layer' })
    }
    const items = [...wanted.values()]
    // Every blob is tried even after one fails, so one bad layer doesn't leave the rest cold.
    const settled = await Promise.allSettled(items.map(async ({ d, kind }) => ({ d, kind, answer: await this.blob(ref, d, kind) })))
    const failed = settled.find(s => s.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const fetched = settled.flatMap(s => s.status === 'fulfilled' ? [s.value] : [])
    const platforms = manifests.map(m =>
      m.platform ?? configPlatform(fetched.find(f => f.d.digest === m.manifest.config.digest)?.answer.body)
    )
    this.reporter.imageDone({
      image: ref.input,
      platforms: [...new Set(platforms.flatMap(p => p === undefined ? [] : [formatPlatform(p)]))],
      blobs: fetched.map(({ d, kind, answer }): FetchedItem => ({
        image: ref.input,
        kind,
        digest: d.digest,
        bytes: answer.bytes,
        cache: answer.cache,
        source: answer.source
      })),
      ms: performance.now() - started
    })
  }
}
