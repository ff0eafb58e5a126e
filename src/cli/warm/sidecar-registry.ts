import { createHash } from 'node:crypto'
import { request, type Dispatcher } from 'undici'
import { manifestReference, type ImageReference } from '../../oci/image-ref.js'
import { DEFAULT_MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from '../../oci/media-types.js'
import { upstreamEntryFor } from '../../registry/upstreams.js'
import type { CacheStatus } from '../../resolver/source.js'
import { SidecarUnreachableError } from '../stats.js'
import { SidecarAnswerError, UnusableImageError } from './errors.js'
import type { Descriptor } from './image-manifests.js'

const PROBE_TIMEOUT_MS = 5_000
/** Config blobs up to this size are kept to read the platform of a single-platform image. */
const MAX_CONFIG_READ = 1024 * 1024

export interface ManifestAnswer {
  digest: string
  mediaType: string
  body: Buffer
  cache: CacheStatus | undefined
  source: string | undefined
}

export interface BlobAnswer {
  bytes: number
  cache: CacheStatus | undefined
  source: string | undefined
  /** The body, for a small config blob only. */
  body: Buffer | undefined
}

/** The sidecar's registry API (GET /v2/…, `?ns=<host>` for a reference that names one). */
export class SidecarRegistry {
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


function headerValue (headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** What to do about an error the sidecar answered (OCI codes, SPEC 3.3). */
function hintFor (status: number, code: string, message: string, ref: ImageReference): string | undefined {
  const registry = ref.host ?? "the sidecar's first upstream"
  if (status === 400 && message.includes('unknown registry namespace') && ref.host !== undefined) {
    // Never "leave the host out": that would pull the same path from another registry (Docker Hub).
    return `add ${ref.host} to the sidecar's CACHE_REGISTRY_UPSTREAMS (e.g. ${upstreamEntryFor(ref.host)}) and restart it`
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

