import type { AbortOptions } from '@libp2p/interface'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { DigestMismatchError, type Digest } from '../oci/digest.js'
import { OciError } from '../oci/errors.js'
import { acceptedTypes, OCI_INDEX } from '../oci/media-types.js'
import type { ListAnswer, ListCache } from '../resolver/list-cache.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'
import type { ClientLog } from '../http/client-log.js'
import type { BlobResolver } from '../resolver/blob-resolver.js'
import type { ManifestResolver } from '../resolver/manifest-resolver.js'
import type { Stats } from '../metrics/stats.js'
import { UpstreamRateLimitedError, UpstreamStatusError, UpstreamUnavailableError } from '../upstream/errors.js'
import { clientLeft } from '../http/client-left.js'
import { parseRegistryPath } from './path.js'
import { sendBlob } from '../http/send-blob.js'
import { upstreamRepository, type UpstreamSet } from './upstreams.js'
import { StoreUnavailableError } from '../store/errors.js'
import { cacheDateHeader } from '../http/cache-date.js'

export interface RegistryRoutesInit {
  upstreams: UpstreamSet
  blobs: BlobResolver
  manifests: ManifestResolver
  /** tags/list and referrers answers. */
  lists: ListCache
  /** Who pulls: every pull-API request's User-Agent family. */
  clients: ClientLog
  /** CACHE_LOCAL_NAMESPACE, named when a push reaches the read-only mirror. */
  localNamespace?: string
  stats: Stats
  log: Logger
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' }
/** Upstream answers that may mean "not for the sidecar's access, maybe for the client's" (a private repository). */
const REFUSALS = new Set([401, 403, 404])

/** The OCI distribution pull API as a mirror (docs/design.md §3.3). Returns false when the path is not ours. */
export class RegistryRoutes {
  constructor (private readonly init: RegistryRoutesInit) {}

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!url.pathname.startsWith('/v2')) return false
    await this.serve(req, res, url, () => this.init.upstreams.select(url.searchParams.get('ns')))
    return true
  }

  /**
   * Answers the pull-API request `url` from `upstream()`'s content. With `refused`, an upstream
   * that refuses the sidecar's own access (401, 403, 404) before any byte was sent is not
   * answered here: `refused` is called instead (the forward proxy relays the request with the
   * client's own credentials).
   */
  async serve (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    upstream: () => RegistryUpstream,
    refused?: (err: UpstreamStatusError) => Promise<void>
  ): Promise<void> {
    this.init.clients.note(req.headers['user-agent'])
    const head = req.method === 'HEAD'
    try {
      if (req.method !== 'GET' && !head) {
        throw new OciError(
          405,
          'UNSUPPORTED',
          `${req.method ?? ''} is not supported: this is a read-only pull-through mirror${
            this.init.localNamespace === undefined
              ? ''
              : `; pushes are accepted under /v2/${this.init.localNamespace}/ (CACHE_LOCAL_NAMESPACE)`
          }`
        )
      }
      const route = parseRegistryPath(url.pathname)
      if (route === undefined) throw new OciError(404, 'NAME_UNKNOWN', `no such endpoint ${url.pathname.slice(0, 200)}`)
      if (route.kind === 'base') {
        res.writeHead(200, { ...API_VERSION, 'content-type': 'application/json', 'content-length': 2 })
        res.end(head ? undefined : '{}')
        return
      }
      const client = upstream()
      const repo = upstreamRepository(client, route.name)
      const left = clientLeft(res)
      if (route.kind === 'manifest') await this.manifest(req, res, client, repo, route.reference, head, { signal: left })
      else if (route.kind === 'tags') await this.tags(res, client, repo, url, head, { signal: left })
      else if (route.kind === 'referrers') await this.referrers(res, client, repo, route.digest, url, head, { signal: left })
      else await this.blob(req, res, client, repo, route.digest, head, { signal: left })
    } catch (err) {
      if (refused !== undefined && !res.headersSent && err instanceof UpstreamStatusError && REFUSALS.has(err.status)) await refused(err)
      else this.fail(res, err, head, url)
    }
  }

  private async manifest (
    req: IncomingMessage,
    res: ServerResponse,
    client: Parameters<ManifestResolver['get']>[0],
    repo: string,
    reference: string,
    head: boolean,
    options: AbortOptions = {}
  ): Promise<void> {
    const accept = acceptedTypes(req.headers.accept)
    const headers: Record<string, string> = { ...API_VERSION }
    let digest = reference.startsWith('sha256:') ? reference as `sha256:${string}` : undefined
    if (digest === undefined) {
      const tag = await this.init.manifests.resolveTag(client, repo, reference, accept, options)
      digest = tag.digest
      this.init.stats.imagePulls.tagged(`${client.name}/${repo}`, reference)
      if (tag.staleSince !== undefined) {
        headers.warning = `110 p2p-cache "Response is Stale: upstream unavailable, tag resolved at ${
          new Date(tag.staleSince).toISOString()
        }"`
        headers['x-cache-stale-tag'] = new Date(tag.staleSince).toISOString()
        if (tag.peer !== undefined) headers['x-cache-tag-source'] = tag.peer
      }
      if (head && tag.staleSince === undefined && tag.size !== undefined) {
        // A HEAD by tag needs only the upstream's answer; no manifest download. X-Cache says
        // what a GET would: HIT when the manifest is stored here.
        const storedAt = await this.init.blobs.storedAt(tag.digest)
        const local = storedAt !== undefined
        this.init.stats.inc(local ? 'hits' : 'misses')
        res.writeHead(200, {
          ...headers,
          'content-type': tag.mediaType,
          'content-length': tag.size,
          'docker-content-digest': tag.digest,
          etag: `"${tag.digest}"`,
          'x-cache': local ? 'HIT' : 'MISS',
          'x-cache-source': local ? 'local' : client.name,
          ...cacheDateHeader(local ? 'HIT' : 'MISS', storedAt)
        })
        res.end()
        return
      }
    }
    const manifest = await this.init.manifests.get(client, repo, digest, options)
    res.writeHead(200, {
      ...headers,
      'content-type': manifest.mediaType,
      'content-length': manifest.body.byteLength,
      'docker-content-digest': manifest.digest,
      etag: `"${manifest.digest}"`,
      'x-cache': manifest.cache,
      'x-cache-source': manifest.origin,
      ...cacheDateHeader(manifest.cache, manifest.storedAt)
    })
    res.end(head ? undefined : manifest.body)
    if (!head) {
      this.init.stats.inc('bytes_served', manifest.body.byteLength)
      this.init.stats.imagePulls.pulled(`${client.name}/${repo}`, manifest.body, manifest.mediaType)
    }
  }

  private async blob (
    req: IncomingMessage,
    res: ServerResponse,
    client: Parameters<BlobResolver['open']>[0],
    repo: string,
    digest: `sha256:${string}`,
    head: boolean,
    options: AbortOptions = {}
  ): Promise<void> {
    const common = {
      ...API_VERSION,
      'docker-content-digest': digest,
      etag: `"${digest}"`,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream'
    }
    if (head) {
      const info = await this.init.blobs.head(client, repo, digest, options)
      res.writeHead(200, {
        ...common,
        ...(info.size !== undefined ? { 'content-length': info.size } : {}),
        'x-cache': info.cache,
        'x-cache-source': info.origin,
        ...cacheDateHeader(info.cache, info.storedAt)
      })
      res.end()
      return
    }
    const source = await this.init.blobs.open(client, repo, digest, options)
    try {
      await sendBlob(req, res, source, {
        etag: common.etag,
        headers: { ...API_VERSION, 'docker-content-digest': digest, 'content-type': 'application/octet-stream' },
        rangeHeader: req.headers.range,
        stats: this.init.stats
      })
    } finally {
      await source.release()
    }
  }

  /**
   * `GET /v2/<name>/tags/list[?n=&last=]`: asked upstream every time (revalidated when it sends
   * an ETag), the last answer served while it is unavailable. The `Link` to the next page points
   * at the sidecar.
   */
  private async tags (
    res: ServerResponse,
    client: RegistryUpstream,
    repo: string,
    url: URL,
    head: boolean,
    options: AbortOptions = {}
  ): Promise<void> {
    const query = new URLSearchParams(url.searchParams)
    query.delete('ns')
    const q = query.toString()
    const answer = await this.init.lists.get(client, repo, `/v2/${repo}/tags/list${q === '' ? '' : `?${q}`}`, 'application/json', options)
    const headers: Record<string, string> = { 'content-type': answer.contentType }
    if (answer.link !== undefined) headers.link = sidecarLink(answer.link, client, url.searchParams.get('ns'))
    this.sendList(res, answer, headers, head)
  }

  /**
   * `GET /v2/<name>/referrers/<digest>[?artifactType=]` (OCI distribution 1.1): the upstream's
   * answer, or where it has no referrers API (404), the index under the fallback tag
   * `sha256-<hex>`, or an empty index. Filtered by `artifactType` here when asked
   * (`OCI-Filters-Applied`).
   */
  private async referrers (
    res: ServerResponse,
    client: RegistryUpstream,
    repo: string,
    digest: Digest,
    url: URL,
    head: boolean,
    options: AbortOptions = {}
  ): Promise<void> {
    const artifactType = url.searchParams.get('artifactType') ?? undefined
    const fetchIndex = async (path: string): Promise<ListAnswer | undefined> => {
      try {
        return await this.init.lists.get(client, repo, path, OCI_INDEX, options)
      } catch (err) {
        if (err instanceof UpstreamStatusError && [400, 404, 405].includes(err.status)) return undefined
        throw err
      }
    }
    const answer = await fetchIndex(`/v2/${repo}/referrers/${digest}`) ??
      await fetchIndex(`/v2/${repo}/manifests/${digest.replace(':', '-')}`)
    const index = referrersIndex(answer?.body, artifactType)
    const headers: Record<string, string> = { 'content-type': OCI_INDEX }
    if (artifactType !== undefined) headers['oci-filters-applied'] = 'artifactType'
    this.sendList(
      res,
      answer === undefined ? { body: index, contentType: OCI_INDEX, cache: 'MISS', origin: client.name } : { ...answer, body: index },
      headers,
      head
    )
  }

  private sendList (res: ServerResponse, answer: ListAnswer, headers: Record<string, string>, head: boolean): void {
    const stale = answer.cache === 'STALE'
    if (stale && answer.storedAt !== undefined) {
      headers.warning = `110 p2p-cache "Response is Stale: upstream unavailable, fetched at ${new Date(answer.storedAt).toISOString()}"`
    }
    res.writeHead(200, {
      ...API_VERSION,
      ...headers,
      'content-length': answer.body.byteLength,
      'x-cache': stale ? 'HIT' : answer.cache,
      'x-cache-source': answer.origin,
      ...cacheDateHeader(stale ? 'HIT' : answer.cache, answer.storedAt)
    })
    res.end(head ? undefined : answer.body)
    if (!head) this.init.stats.inc('bytes_served', answer.body.byteLength)
  }

  private fail (res: ServerResponse, err: unknown, head: boolean, url: URL): void {
    const { log, stats } = this.init
    if (res.headersSent) {
      // Mid-body failure (upstream cut, digest mismatch): an incomplete response is the only
      // honest signal left; the client retries and we never complete it with wrong bytes.
      // A client hanging up is not counted: that failure is not ours.
      if (!(err instanceof Error && 'code' in err && err.code === 'ERR_STREAM_PREMATURE_CLOSE')) {
        stats.inc('errors')
        log.warn({ path: url.pathname, err: (err as Error).message }, 'response aborted')
      }
      res.destroy()
      return
    }
    if (err instanceof UpstreamStatusError && err.status < 500 && /json/.test(err.contentType ?? '') && err.body !== '') {
      // The upstream's own OCI error (MANIFEST_UNKNOWN, BLOB_UNKNOWN, DENIED...) is the best answer.
      res.writeHead(err.status, { ...API_VERSION, 'content-type': 'application/json', 'content-length': Buffer.byteLength(err.body) })
      res.end(head ? undefined : err.body)
      return
    }
    const error = toOciError(err, url.pathname.includes('/blobs/') ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN')
    if (error.status >= 500 || error.status === 429) {
      stats.inc('errors')
      log.warn({ path: url.pathname, status: error.status, err: error.message }, 'request failed')
    }
    const body = error.body()
    res.writeHead(error.status, {
      ...API_VERSION,
      ...error.headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body)
    })
    res.end(head ? undefined : body)
  }
}

/**
 * A `Link` to the next page as the client must follow it: the upstream's own origin removed
 * (the path is the same on the sidecar), `ns=` kept for containerd-style requests.
 */
function sidecarLink (link: string, client: RegistryUpstream, ns: string | null): string {
  const base = client.url.href.replace(/\/+$/, '')
  return link.replace(/<([^>]*)>/g, (_all, target: string) => {
    let path = target.startsWith(base) ? target.slice(base.length) : target
    if (ns !== null && path.startsWith('/v2/')) path += `${path.includes('?') ? '&' : '?'}ns=${encodeURIComponent(ns)}`
    return `<${path}>`
  })
}

/**
 * The referrers index to answer: the upstream's (or the fallback tag's) `manifests`, filtered to
 * `artifactType` when given; an empty index when there is none (OCI distribution 1.1: a
 * registry answers 200 with an empty index, not 404).
 */
function referrersIndex (body: Buffer | undefined, artifactType: string | undefined): Buffer {
  let manifests: Array<{ artifactType?: unknown }> = []
  if (body !== undefined) {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { manifests?: unknown }
      if (Array.isArray(parsed.manifests)) manifests = parsed.manifests as Array<{ artifactType?: unknown }>
    } catch {}
  }
  if (artifactType !== undefined) manifests = manifests.filter(m => m.artifactType === artifactType)
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }))
}

function toOciError (err: unknown, unknownCode: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN'): OciError {
  if (err instanceof OciError) return err
  if (err instanceof UpstreamStatusError) {
    const code = err.status === 404 ? unknownCode : err.status === 401 ? 'UNAUTHORIZED' : err.status === 403 ? 'DENIED' : 'UNSUPPORTED'
    return new OciError(
      err.status === 404 || err.status === 401 || err.status === 403 ? err.status : 502,
      code,
      `upstream ${err.upstream} answered ${err.status}`,
      { upstreamBody: err.body.slice(0, 1000) }
    )
  }
  if (err instanceof UpstreamRateLimitedError) {
    const wait = err.retryAfter !== undefined && /^\d+$/.test(err.retryAfter.trim()) ? `in ${err.retryAfter.trim()} s` : 'later'
    return new OciError(
      429,
      'TOOMANYREQUESTS',
      `upstream ${err.upstream} is rate limiting this host (429) and the content is not in the cache or on a peer; try again ${wait}, or give the sidecar an account with a higher limit (CACHE_REGISTRY_AUTH)`,
      undefined,
      err.retryAfter !== undefined ? { 'retry-after': err.retryAfter } : {}
    )
  }
  if (err instanceof UpstreamUnavailableError) {
    return new OciError(
      502,
      'UPSTREAM_UNAVAILABLE',
      `${err.message}; the content is not in the cache. Check the upstream URL in CACHE_REGISTRY_UPSTREAMS and this host's network`
    )
  }
  if (err instanceof DigestMismatchError) return new OciError(502, 'DIGEST_INVALID', err.message)
  if (err instanceof StoreUnavailableError) return new OciError(503, 'STORE_UNAVAILABLE', err.message, undefined, { 'retry-after': '1' })
  return new OciError(500, 'UNSUPPORTED', `internal error: ${(err as Error).message ?? String(err)}`)
}
