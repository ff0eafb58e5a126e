import { createHash } from 'node:crypto'
import PQueue from 'p-queue'
import { Agent, request, type Dispatcher } from 'undici'
import { z } from 'zod'
import { ConfigError } from '../config/errors.js'
import { parseDuration } from '../config/units.js'
import { isDigest } from '../oci/digest.js'
import {
  formatPlatform, hostPlatform, manifestReference, parseImageReference, parsePlatform, platformMatches,
  type ImageReference, type Platform
} from '../oci/image-ref.js'
import { DEFAULT_MANIFEST_ACCEPT, INDEX_TYPES, MAX_MANIFEST_BYTES } from '../oci/media-types.js'
import type { CacheStatus } from '../resolver/source.js'
import { BarReporter, LineReporter, type FetchedItem, type WarmReporter } from './progress.js'
import { localSidecarUrl } from './sidecar-url.js'
import { SidecarUnreachableError } from './stats.js'

export interface WarmFlags {
  url?: string
  platform?: string
  allPlatforms?: boolean
  concurrency?: string
  timeout?: string
}

const DescriptorSchema = z.object({
  mediaType: z.string().optional(),
  digest: z.string().refine(isDigest, 'expected sha256:<64 hex>'),
  size: z.number().int().nonnegative(),
  platform: z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional() }).optional(),
  annotations: z.record(z.string(), z.string()).optional()
})
type Descriptor = z.infer<typeof DescriptorSchema>
const IndexSchema = z.object({ manifests: z.array(DescriptorSchema) })
const ImageManifestSchema = z.object({ config: DescriptorSchema, layers: z.array(DescriptorSchema) })
type ImageManifest = z.infer<typeof ImageManifestSchema>

/** The sidecar answered an error: its OCI code and message, and what to do about it. */
export class SidecarAnswerError extends Error {
  constructor (readonly status: number, readonly code: string, message: string, readonly hint: string | undefined) {
    super(`the sidecar answered ${status} ${code}: ${message}`)
    this.name = 'SidecarAnswerError'
  }
}

/** The image's content is not what warm can pull: the message says what was found. */
class UnusableImageError extends Error {
  constructor (message: string, readonly hint?: string) {
    super(message)
    this.name = 'UnusableImageError'
  }
}

type PlatformChoice = { all: true } | { all: false, platform: Platform }

interface Settings {
  base: string
  choice: PlatformChoice
  concurrency: number
  timeoutMs: number
}

const DEFAULT_CONCURRENCY = 4
const DEFAULT_TIMEOUT = '5m'
const PROBE_TIMEOUT_MS = 5_000
/** Config blobs up to this size are kept to read the platform of a single-platform image. */
const MAX_CONFIG_READ = 1024 * 1024

function settingsFrom (flags: WarmFlags): Settings {
  const concurrencyText = flags.concurrency ?? String(DEFAULT_CONCURRENCY)
  const concurrency = /^\d+$/.test(concurrencyText) ? Number(concurrencyText) : NaN
  if (!(concurrency >= 1 && concurrency <= 64)) throw new ConfigError('--concurrency', concurrencyText, 'a whole number from 1 to 64 (requests to the sidecar at once)')
  const timeoutText = flags.timeout ?? DEFAULT_TIMEOUT
  const timeoutMs = parseDuration(timeoutText)
  if (timeoutMs === undefined || timeoutMs < 1_000) throw new ConfigError('--timeout', timeoutText, 'a duration of at least 1s, e.g. 30s or 10m')
  if (flags.platform !== undefined && flags.allPlatforms === true) {
    throw new ConfigError('--platform', flags.platform, 'either --platform or --all-platforms, not both')
  }
  const choice: PlatformChoice = flags.allPlatforms === true
    ? { all: true }
    : { all: false, platform: flags.platform === undefined ? hostPlatform() : parsePlatform(flags.platform) }
  const base = flags.url ?? localSidecarUrl()
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) throw new ConfigError('--url', base, 'the sidecar\'s http(s) URL, e.g. http://127.0.0.1:9080')
  return { base, choice, concurrency, timeoutMs }
}

function headerValue (headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** What to do about an error the sidecar answered (OCI codes, SPEC 3.3). */
function hintFor (status: number, code: string, message: string, ref: ImageReference): string | undefined {
  const registry = ref.host ?? "the sidecar's first upstream"
  if (status === 400 && message.includes('unknown registry namespace') && ref.host !== undefined) {
    return `add the registry to the sidecar's CACHE_REGISTRY_UPSTREAMS (e.g. ${ref.host}=https://${ref.host}) and restart it, or leave the host out to pull from its first upstream`
  }
  if (code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN' || code === 'BLOB_UNKNOWN' || status === 404) {
    return `check that ${ref.repository}${ref.digest === undefined ? ':' : '@'}${manifestReference(ref)} exists on ${registry}`
  }
  if (status === 401 || status === 403) return `give the sidecar credentials for ${registry}: CACHE_REGISTRY_AUTH=<name>=<user>:<token> or CACHE_DOCKER_CONFIG`
  if (status === 429) return `${registry} is rate-limiting; add credentials (CACHE_REGISTRY_AUTH) or warm again later`
  if (status === 502 || code === 'UPSTREAM_UNAVAILABLE') {
    return `${registry} is unreachable and no cache or peer has the content; check its URL in CACHE_REGISTRY_UPSTREAMS and the sidecar host's network`
  }
  if (status >= 500) return 'see the sidecar\'s log for the cause'
  return undefined
}

interface ManifestAnswer {
  digest: string
  mediaType: string
  body: Buffer
  cache: CacheStatus | undefined
  source: string | undefined
}

interface BlobAnswer {
  bytes: number
  cache: CacheStatus | undefined
  source: string | undefined
  /** The body, for a small config blob only. */
  body: Buffer | undefined
}

/** The sidecar's registry API (GET /v2/…, `?ns=<host>` for a reference that names one). */
class SidecarRegistry {
  constructor (private readonly base: string, private readonly dispatcher: Dispatcher, private readonly timeoutMs: number) {}

  /** GET /v2/: tells a sidecar that is not there (exit 2) from a failing image (exit 1). */
  async probe (): Promise<void> {
    try {
      const res = await request(new URL('/v2/', this.base), { dispatcher: this.dispatcher, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`GET /v2/ answered ${res.statusCode}: not a registry mirror`)
    } catch (err) {
      throw new SidecarUnreachableError(this.base, err)
    }
  }

  private url (ref: ImageReference, kind: 'manifests' | 'blobs', reference: string): URL {
    const url = new URL(`/v2/${ref.repository}/${kind}/${reference}`, this.base)
    if (ref.host !== undefined) url.searchParams.set('ns', ref.host)
    return url
  }

  private async get (ref: ImageReference, url: URL, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData
    try {
      res = await request(url, { dispatcher: this.dispatcher, headers, signal: AbortSignal.timeout(this.timeoutMs) })
    } catch (err) {
      throw this.transportError(err, url)
    }
    if (res.statusCode === 200) return res
    const text = (await res.body.text().catch(() => '')).slice(0, 4000)
    let code = 'UNKNOWN'
    let message = text.trim() === '' ? 'no error body' : text.trim().slice(0, 300)
    try {
      const first = (JSON.parse(text) as { errors?: Array<{ code?: string, message?: string }> }).errors?.[0]
      code = first?.code ?? code
      message = first?.message ?? message
    } catch {
      // Not the registry's JSON error: the text itself is the best message.
    }
    throw new SidecarAnswerError(res.statusCode, code, message, hintFor(res.statusCode, code, message, ref))
  }

  private transportError (err: unknown, url: URL): Error {
    const e = err as Error & { code?: string, cause?: { code?: string } }
    if (e.name === 'TimeoutError') {
      return new Error(`no complete answer from the sidecar within ${this.timeoutMs / 1000} s for ${url.pathname}; raise --timeout for large layers on a slow link`)
    }
    return new Error(`request to the sidecar at ${this.base} failed (${e.code ?? e.cause?.code ?? e.message}): ${url.pathname}`, { cause: err })
  }

  async manifest (ref: ImageReference, reference: string): Promise<ManifestAnswer> {
    const url = this.url(ref, 'manifests', reference)
    const res = await this.get(ref, url, { accept: DEFAULT_MANIFEST_ACCEPT })
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength
        if (size > MAX_MANIFEST_BYTES) throw new UnusableImageError(`manifest ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`)
        chunks.push(chunk)
      }
    } catch (err) {
      res.body.destroy()
      throw err instanceof UnusableImageError ? err : this.transportError(err, url)
    }
    const body = Buffer.concat(chunks)
    return {
      body,
      digest: headerValue(res.headers, 'docker-content-digest') ?? `sha256:${createHash('sha256').update(body).digest('hex')}`,
      mediaType: headerValue(res.headers, 'content-type')?.split(';')[0]?.trim() ?? '',
      cache: cacheStatus(headerValue(res.headers, 'x-cache')),
      source: headerValue(res.headers, 'x-cache-source')
    }
  }

  /** GETs a blob and reads it to the end: that is what makes the sidecar store it. */
  async blob (ref: ImageReference, d: Descriptor, keepBody: boolean, onBytes: (n: number) => void): Promise<BlobAnswer> {
    const url = this.url(ref, 'blobs', d.digest)
    const res = await this.get(ref, url, {})
    const kept: Buffer[] = []
    let bytes = 0
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        bytes += chunk.byteLength
        onBytes(chunk.byteLength)
        if (keepBody && bytes <= MAX_CONFIG_READ) kept.push(chunk)
      }
    } catch (err) {
      res.body.destroy()
      throw this.transportError(err, url)
    }
    if (bytes !== d.size) throw new UnusableImageError(`the sidecar sent ${bytes} bytes of ${d.digest}, the manifest says ${d.size}`)
    return {
      bytes,
      cache: cacheStatus(headerValue(res.headers, 'x-cache')),
      source: headerValue(res.headers, 'x-cache-source'),
      body: keepBody && bytes <= MAX_CONFIG_READ ? Buffer.concat(kept) : undefined
    }
  }
}

function cacheStatus (value: string | undefined): CacheStatus | undefined {
  return value === 'HIT' || value === 'PEER' || value === 'MISS' ? value : undefined
}

function isIndex (m: ManifestAnswer, json: unknown): boolean {
  if (INDEX_TYPES.includes(m.mediaType)) return true
  return typeof json === 'object' && json !== null && Array.isArray((json as { manifests?: unknown }).manifests) && !('layers' in json)
}

/** buildx attaches attestations to indexes as `unknown/unknown` entries; they are not platforms. */
function isAttestation (d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown'
}

function chooseEntries (entries: Descriptor[], choice: PlatformChoice, image: string): Descriptor[] {
  const runnable = entries.filter(e => !isAttestation(e))
  if (choice.all) return runnable
  const want = choice.platform
  const matches = runnable.filter(e => e.platform !== undefined && platformMatches(want, e.platform))
  const best = matches.find(e => e.platform !== undefined && platformMatches({ ...want, variant: want.variant ?? '' }, e.platform)) ?? matches[0]
  if (best !== undefined) return [best]
  const available = runnable.flatMap(e => e.platform === undefined ? [] : [formatPlatform(e.platform)])
  throw new UnusableImageError(`${image} has no ${formatPlatform(want)} image (it has: ${available.join(', ') || 'no platforms'})`,
    'pass --platform with one of those, or --all-platforms')
}

interface PlatformManifest {
  manifest: ImageManifest
  platform: Platform | undefined
}

/** Warms images through one sidecar, their requests sharing one bounded queue. */
class Warmer {
  private readonly queue: PQueue
  /** A blob shared by several images (or platforms) is read once. */
  private readonly blobs = new Map<string, Promise<BlobAnswer>>()

  constructor (private readonly sidecar: SidecarRegistry, private readonly settings: Settings, private readonly reporter: WarmReporter) {
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
    this.reporter.item({ image: ref.input, kind: isIndex(answer, json) ? 'index' : 'manifest', digest: answer.digest, bytes: answer.body.byteLength, cache: answer.cache, source: answer.source })
    return { answer, json }
  }

  /** The image manifests to warm under `reference`: itself, or the chosen entries of an index (one level of nesting). */
  private async manifests (ref: ImageReference, reference: string, platform: Platform | undefined, depth: number): Promise<PlatformManifest[]> {
    const { answer, json } = await this.fetchManifest(ref, reference)
    if (isIndex(answer, json)) {
      if (depth > 1) throw new UnusableImageError(`${ref.input}: indexes nested deeper than two levels are not supported`)
      const index = IndexSchema.safeParse(json)
      if (!index.success) throw new UnusableImageError(`${ref.input}: the index ${answer.digest} is malformed (${index.error.issues[0]?.message ?? 'invalid'})`)
      const entries = chooseEntries(index.data.manifests, this.settings.choice, ref.input)
      const nested = await Promise.all(entries.map(async e => await this.manifests(ref, e.digest, e.platform, depth + 1)))
      return nested.flat()
    }
    const manifest = ImageManifestSchema.safeParse(json)
    if (!manifest.success) {
      throw new UnusableImageError(`${ref.input}: ${answer.mediaType || 'the manifest'} ${answer.digest} is not an OCI or Docker schema 2 image manifest`,
        'schema 1 images are not supported; push the image again with a current docker or skopeo')
    }
    return [{ manifest: manifest.data, platform }]
  }

  private blob (ref: ImageReference, d: Descriptor, kind: 'config' | 'layer'): Promise<BlobAnswer> {
    const key = `${ref.host ?? ''}|${d.digest}`
    let pending = this.blobs.get(key)
    if (pending === undefined) {
      this.reporter.expect(d.size)
      pending = this.queue.add(async () => {
        const answer = await this.sidecar.blob(ref, d, kind === 'config', n => { this.reporter.received(n) })
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
    const platforms = manifests.map(m => m.platform ?? configPlatform(fetched.find(f => f.d.digest === m.manifest.config.digest)?.answer.body))
    this.reporter.imageDone({
      image: ref.input,
      platforms: [...new Set(platforms.flatMap(p => p === undefined ? [] : [formatPlatform(p)]))],
      blobs: fetched.map(({ d, kind, answer }): FetchedItem => ({ image: ref.input, kind, digest: d.digest, bytes: answer.bytes, cache: answer.cache, source: answer.source })),
      ms: performance.now() - started
    })
  }
}

/** A single-platform image names its platform only in its config. */
function configPlatform (body: Buffer | undefined): Platform | undefined {
  if (body === undefined) return undefined
  try {
    const c = JSON.parse(body.toString('utf8')) as { os?: unknown, architecture?: unknown, variant?: unknown }
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return undefined
    return typeof c.variant === 'string' ? { os: c.os, architecture: c.architecture, variant: c.variant } : { os: c.os, architecture: c.architecture }
  } catch {
    return undefined
  }
}

/**
 * `p2p-cache warm IMAGE...`: pulls each image's manifests and blobs through the running sidecar
 * so that they are in its store (and announced to peers) before a job needs them.
 * Returns the exit code: 0 all warmed, 1 an image failed. Unusable input throws (exit 2).
 */
export async function warmCommand (images: string[], flags: WarmFlags): Promise<number> {
  const refs = images.map(parseImageReference)
  const settings = settingsFrom(flags)
  const agent = new Agent({ connections: settings.concurrency + 1 })
  try {
    const sidecar = new SidecarRegistry(settings.base, agent, settings.timeoutMs)
    await sidecar.probe()
    const reporter: WarmReporter = process.stderr.isTTY === true ? new BarReporter() : new LineReporter()
    const warmer = new Warmer(sidecar, settings, reporter)
    let failures = 0
    await Promise.all(refs.map(async ref => {
      try {
        await warmer.warm(ref)
      } catch (err) {
        failures++
        const hint = err instanceof SidecarAnswerError || err instanceof UnusableImageError ? err.hint : undefined
        reporter.imageFailed(ref.input, (err as Error).message ?? String(err), hint)
      }
    }))
    reporter.finish()
    return failures === 0 ? 0 : 1
  } finally {
    await agent.close()
  }
}
