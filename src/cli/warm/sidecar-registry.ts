import { createHash } from 'node:crypto'
import { manifestReference, type ImageReference } from '../../oci/image-ref.js'
import { DEFAULT_MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from '../../oci/media-types.js'
import { upstreamEntryFor } from '../../registry/upstreams.js'
import type { CacheStatus } from '../../resolver/source.js'
import { discard, readBounded } from '../../io/bounded-body.js'
import type { SidecarClient, SidecarStream } from '../../admin/client/client.js'
import { MAX_ERROR_BYTES } from '../../admin/client/constants.js'
import { SidecarUnreachableError } from '../../admin/client/errors.js'
import { SidecarAnswerError, UnusableImageError } from './errors.js'
import type { Descriptor } from './image-manifests.js'
import { mediaTypeOf } from '../../http/fields.js'

/** GET /v2/ answers at once on a sidecar; warm's --timeout is for large blobs. */
const PROBE_TIMEOUT_MS = 5_000
/** Config blobs up to this size are kept to read the platform of a single-platform image. */
const MAX_CONFIG_READ = 1024 * 1024
/** The start of an error answer that makes its message. */
const MAX_ERROR_TEXT = 4000

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

/**
 * The sidecar's registry API (GET /v2/…, `?ns=<host>` for a reference that names one), over the
 * SidecarClient: bodies are streamed (a blob is read to its end, never held), headers read
 * for X-Cache. Each request has the client's budget (warm's --timeout).
 */
export class SidecarRegistry {
  constructor (private readonly client: SidecarClient) {}

  /** GET /v2/: tells a sidecar that is not there (SidecarUnreachableError, exit 2) from a failing image (exit 1). */
  async probe (): Promise<void> {
    try {
      const { status } = await this.client.probe('/v2/', { timeoutMs: PROBE_TIMEOUT_MS })
      if (status !== 200) throw new Error(`GET /v2/ answered ${status}: not a registry mirror`)
    } catch (err) {
      throw err instanceof SidecarUnreachableError ? err : new SidecarUnreachableError(this.client.url, err)
    }
  }

  /** The path and query of a manifest or blob of `ref`. */
  private target (ref: ImageReference, kind: 'manifests' | 'blobs', reference: string): { path: string, query: Record<string, string> } {
    return { path: `/v2/${ref.repository}/${kind}/${reference}`, query: ref.host !== undefined ? { ns: ref.host } : {} }
  }

  /** A 200 answer with its body unread; any other is a SidecarAnswerError with the sidecar's OCI code and a hint. */
  private async get (
    ref: ImageReference,
    path: string,
    query: Record<string, string>,
    headers: Record<string, string>
  ): Promise<SidecarStream> {
    let res: SidecarStream
    try {
      res = await this.client.stream(path, { headers, query })
    } catch (err) {
      throw this.transportError(err, path)
    }
    if (res.status === 200) return res
    const text = (await readBounded(res.body, MAX_ERROR_BYTES).catch(() => undefined))?.toString('utf8').slice(0, MAX_ERROR_TEXT) ?? ''
    let code = 'UNKNOWN'
    let message = text.trim() === '' ? 'no error body' : text.trim().slice(0, 300)
    try {
      const first = (JSON.parse(text) as { errors?: Array<{ code?: string, message?: string }> }).errors?.[0]
      code = first?.code ?? code
      message = first?.message ?? message
    } catch {
      // Not the registry's JSON error: the text itself is the best message.
    }
    throw new SidecarAnswerError(res.status, code, message, hintFor(res.status, code, message, ref))
  }

  /** What a request that broke off says: the budget that ran out and how to raise it, or the transport's error. */
  private transportError (err: unknown, path: string): Error {
    const e = err instanceof SidecarUnreachableError ? err : new SidecarUnreachableError(this.client.url, err)
    if (e.timedOut) {
      return new Error(
        `no complete answer from the sidecar within ${
          this.client.timeoutMs / 1000
        } s for ${path}; raise --timeout for large layers on a slow link`
      )
    }
    return new Error(`request to the sidecar at ${this.client.url} failed (${e.code ?? e.reason}): ${path}`, { cause: e.cause })
  }

  async manifest (ref: ImageReference, reference: string): Promise<ManifestAnswer> {
    const { path, query } = this.target(ref, 'manifests', reference)
    const res = await this.get(ref, path, query, { accept: DEFAULT_MANIFEST_ACCEPT })
    let body: Buffer | undefined
    try {
      body = await readBounded(res.body, MAX_MANIFEST_BYTES)
    } catch (err) {
      throw this.transportError(err, path)
    }
    if (body === undefined) throw new UnusableImageError(`manifest ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`)
    return {
      body,
      digest: res.header('docker-content-digest') ?? `sha256:${createHash('sha256').update(body).digest('hex')}`,
      mediaType: mediaTypeOf(res.header('content-type')),
      cache: cacheStatus(res.header('x-cache')),
      source: res.header('x-cache-source')
    }
  }

  /** GETs a blob and reads it to the end: that is what makes the sidecar store it. */
  async blob (ref: ImageReference, d: Descriptor, keepBody: boolean, onBytes: (n: number) => void): Promise<BlobAnswer> {
    const { path, query } = this.target(ref, 'blobs', d.digest)
    const res = await this.get(ref, path, query, {})
    const kept: Buffer[] = []
    let bytes = 0
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        bytes += chunk.byteLength
        onBytes(chunk.byteLength)
        if (keepBody && bytes <= MAX_CONFIG_READ) kept.push(chunk)
      }
    } catch (err) {
      discard(res.body)
      throw this.transportError(err, path)
    }
    if (bytes !== d.size) throw new UnusableImageError(`the sidecar sent ${bytes} bytes of ${d.digest}, the manifest says ${d.size}`)
    return {
      bytes,
      cache: cacheStatus(res.header('x-cache')),
      source: res.header('x-cache-source'),
      body: keepBody && bytes <= MAX_CONFIG_READ ? Buffer.concat(kept) : undefined
    }
  }
}

function cacheStatus (value: string | undefined): CacheStatus | undefined {
  return value === 'HIT' || value === 'PEER' || value === 'MISS' ? value : undefined
}

/** What to do about an error the sidecar answered (OCI codes, docs/design.md §3.3). */
function hintFor (status: number, code: string, message: string, ref: ImageReference): string | undefined {
  const registry = ref.host ?? "the sidecar's first upstream"
  if (status === 400 && message.includes('unknown registry namespace') && ref.host !== undefined) {
    // Never "leave the host out": that would pull the same path from another registry (Docker Hub).
    return `add ${ref.host} to the sidecar's CACHE_REGISTRY_UPSTREAMS (e.g. ${upstreamEntryFor(ref.host)}) and restart it`
  }
  if (code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN' || code === 'BLOB_UNKNOWN' || status === 404) {
    return `check that ${ref.repository}${ref.digest === undefined ? ':' : '@'}${manifestReference(ref)} exists on ${registry}`
  }
  if (status === 401 || status === 403) {
    return `give the sidecar credentials for ${registry}: CACHE_REGISTRY_AUTH=<name>=<user>:<token> or CACHE_DOCKER_CONFIG`
  }
  if (status === 429) return `${registry} is rate-limiting; add credentials (CACHE_REGISTRY_AUTH) or warm again later`
  if (status === 502 || code === 'UPSTREAM_UNAVAILABLE') {
    return `${registry} is unreachable and no cache or peer has the content; check its URL in CACHE_REGISTRY_UPSTREAMS and the sidecar host's network`
  }
  if (status >= 500) return "see the sidecar's log for the cause"
  return undefined
}
