import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { z } from 'zod'
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js'
import { OciError } from '../oci/errors.js'
import { INDEX_TYPES, MANIFEST_TYPES, MAX_MANIFEST_BYTES, OCI_MANIFEST, manifestTypeOfBody } from '../oci/media-types.js'
import { isRepositoryName, isTag } from '../oci/reference.js'
import type { StoreKeeping, StoreReader, StoreWriter } from '../store/roles.js'
import { StoreFullError } from '../store/errors.js'
import type { Stats } from '../metrics/stats.js'
import type { RecordKind, RecordTable } from '../records/swarm-records.js'
import { readBounded } from '../io/bounded-body.js'
import type { UploadSessions } from './upload-sessions.js'
import type { BlobResolver } from '../resolver/blob-resolver.js'
import type { BlobSource } from '../resolver/source.js'
import type { HoldKey } from '../p2p/hold/frames.js'
import { SwarmBlobs } from '../resolver/swarm-blob.js'
import { sendBlob } from '../http/send-blob.js'
import { leftMidRequest } from '../http/client-left.js'
import { ReplicaPlacementError, type Replicator } from './replicator.js'
import type { BucketTier } from '../bucket/bucket-tier.js'
import { contentLength, mediaTypeOf } from '../http/fields.js'
import { cacheDateHeader } from '../http/cache-date.js'

/** What a tag of the local namespace points at, and who wrote it when (the newest write wins). */
export interface LocalTag {
  digest: Digest
  mediaType: string
  size: number
  /** ms since the epoch, on the writer's clock. */
  pushedAt: number
  /** The writer's peer ID: ties of `pushedAt` are broken by it, the same way on every node. */
  writer: string
  /** A DELETE of the tag: a write like any other, so the newest one wins everywhere. */
  deleted?: true
}

/** The `push-tag` record kind: `<repo>:<tag>` → LocalTag. */
export function localTagKind (shared: boolean): RecordKind<LocalTag> {
  return {
    kind: 'push-tag',
    shared,
    parse: value => localTagSchema.safeParse(value).data as LocalTag | undefined,
    // The newest write wins; two in the same millisecond are ordered by writer, on every node alike.
    newer: (a, b) => a.pushedAt > b.pushedAt || (a.pushedAt === b.pushedAt && a.writer > b.writer),
    // A test job pulls right after the build job's push.
    urgent: true,
    // tags/list across the swarm; a deleted tag is not listed.
    listed: tag => tag.deleted !== true
  }
}

const localTagSchema = z.object({
  digest: z.string().refine(isDigest),
  mediaType: z.string().max(255),
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  pushedAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  writer: z.string().max(128),
  deleted: z.literal(true).optional()
})

export interface LocalRegistryInit {
  /** CACHE_LOCAL_NAMESPACE: the first path component of repositories that accept pushes. */
  namespace: string
  store: Pick<StoreReader, 'stat' | 'openRead'> & Pick<StoreWriter, 'put'> & Pick<StoreKeeping, 'keepUntil'>
  /** What is not stored here comes from peers (verified, single-flighted); undefined: this store only. */
  blobs?: Pick<BlobResolver, 'open'> | undefined
  uploads: UploadSessions
  /** Places pushes on other nodes before they are acknowledged (CACHE_LOCAL_REPLICAS). */
  replicas: Pick<Replicator, 'prefetch' | 'place'>
  /** CACHE_LOCAL_TTL (ms): pushed content is kept against eviction this long. */
  ttlMs: number
  tags: RecordTable<LocalTag>
  /** This node's peer ID (a tag record's writer). */
  self: string
  /** The bucket (CACHE_S3_URL): a push's blobs and manifest are uploaded once it is acknowledged. */
  bucket?: Pick<BucketTier, 'uploadBlob'> | undefined
  stats: Pick<Stats, 'inc'>
  log: Logger
  now?: () => number
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' }
const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/
const TAGS = /^\/v2\/(.+)\/tags\/list$/
/** Tags listed per `tags/list` answer at most (OCI: `n` may ask for fewer). */
const MAX_TAGS_LISTED = 1000

/**
 * The swarm-local namespace (issue 25): repositories under `<namespace>/` accept the OCI
 * distribution push API (blob uploads: monolithic, chunked, cross-repository mount; manifests by
 * tag and digest, their referenced blobs required; tag deletion; tags/list) and serve pulls from
 * this node's store. Every blob is verified against its digest before it is committed.
 */
export class LocalRegistry {
  private readonly prefix: string
  /** The local namespace has no upstream: what no runner holds is a 404. */
  private readonly swarm: SwarmBlobs

  constructor (private readonly init: LocalRegistryInit) {
    this.prefix = `/v2/${init.namespace}/`
    this.swarm = new SwarmBlobs({ store: init.store, blobs: init.blobs })
  }

  /** Whether `pathname` is in the local namespace (this route answers it). */
  owns (pathname: string): boolean {
    return pathname.startsWith(this.prefix)
  }

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!this.owns(url.pathname)) return false
    const head = req.method === 'HEAD'
    try {
      await this.route(req, res, url)
    } catch (err) {
      // A client that hung up mid-body (its upload keeps what arrived) is no failure of ours.
      if (leftMidRequest(req)) {
        this.init.log.info({ path: url.pathname, err: (err as Error).message }, 'the client left during its request')
        res.destroy()
        return true
      }
      const error = toOciError(err)
      if (error.status >= 500) {
        this.init.log.warn({ path: url.pathname, status: error.status, err: error.message }, 'local registry request failed')
      }
      if (res.headersSent) {
        res.destroy()
        return true
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
    return true
  }

  private async route (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET'
    const path = url.pathname
    let m: RegExpExecArray | null
    if ((m = UPLOAD.exec(path)) !== null) {
      const repo = this.repo(m[1] as string)
      const id = m[2] as string
      if (id === '') {
        if (method !== 'POST') throw notAllowed(method, path)
        await this.startUpload(req, res, repo, url)
        return
      }
      if (method === 'PATCH') await this.patch(req, res, repo, id)
      else if (method === 'PUT') await this.put(req, res, repo, id, url)
      else if (method === 'GET') this.uploadStatus(res, repo, id, 204)
      else if (method === 'DELETE') {
        await this.init.uploads.cancel(repo, id)
        send(res, 204)
      } else throw notAllowed(method, path)
      return
    }
    if ((m = MANIFEST.exec(path)) !== null) {
      const repo = this.repo(m[1] as string)
      const reference = m[2] as string
      if (method === 'PUT') await this.putManifest(req, res, repo, reference)
      else if (method === 'GET' || method === 'HEAD') await this.getManifest(res, repo, reference, method === 'HEAD')
      else if (method === 'DELETE') await this.deleteManifest(res, repo, reference)
      else throw notAllowed(method, path)
      return
    }
    if ((m = BLOB.exec(path)) !== null) {
      const repo = this.repo(m[1] as string)
      const digest = m[2] as string
      if (!isDigest(digest)) throw new OciError(400, 'DIGEST_INVALID', `${digest.slice(0, 100)} is not sha256:<64 lowercase hex>`)
      if (method === 'GET' || method === 'HEAD') await this.getBlob(req, res, repo, digest, method === 'HEAD')
      else throw notAllowed(method, path)
      return
    }
    if ((m = TAGS.exec(path)) !== null && (method === 'GET' || method === 'HEAD')) {
      await this.listTags(res, this.repo(m[1] as string), url, method === 'HEAD')
      return
    }
    throw new OciError(404, 'NAME_UNKNOWN', `no such endpoint ${path.slice(0, 200)}`)
  }

  private repo (name: string): string {
    if (!isRepositoryName(name)) {
      throw new OciError(400, 'NAME_INVALID', `${name.slice(0, 200)} is not a repository name (lower-case path components)`)
    }
    return name
  }

  /** POST …/blobs/uploads/: a session, a monolithic upload (`?digest=`), or a mount (`?mount=&from=`). */
  private async startUpload (req: IncomingMessage, res: ServerResponse, repo: string, url: URL): Promise<void> {
    const mount = url.searchParams.get('mount')
    if (mount !== null && isDigest(mount) && await this.init.store.stat(mount) !== undefined) {
      // Every blob of the store is this node's to serve: mounting from any repository is a link.
      req.resume()
      await this.pushed(repo, mount)
      send(res, 201, { location: `/v2/${repo}/blobs/${mount}`, 'docker-content-digest': mount })
      return
    }
    const id = await this.init.uploads.start(repo)
    const digest = url.searchParams.get('digest')
    if (digest !== null) {
      if (!isDigest(digest)) {
        await this.init.uploads.cancel(repo, id)
        throw new OciError(400, 'DIGEST_INVALID', `${digest.slice(0, 100)} is not sha256:<64 lowercase hex>`)
      }
      try {
        await this.init.uploads.append(repo, id, req, { length: contentLength(req.headers['content-length']) })
      } catch (err) {
        // A monolithic upload has no session for the client to resume: its bytes go now.
        await this.init.uploads.cancel(repo, id).catch(() => {})
        throw err
      }
      await this.commit(res, repo, id, digest)
      return
    }
    req.resume()
    send(res, 202, { location: `/v2/${repo}/blobs/uploads/${id}`, range: '0-0', 'docker-upload-uuid': id })
  }

  /** PATCH: a chunk (Content-Range `<start>-<end>` must continue the upload) or a stream of the rest. */
  private async patch (req: IncomingMessage, res: ServerResponse, repo: string, id: string): Promise<void> {
    const received = await this.init.uploads.append(repo, id, req, {
      start: rangeStart(req),
      length: contentLength(req.headers['content-length'])
    })
    send(res, 202, { location: `/v2/${repo}/blobs/uploads/${id}`, range: `0-${Math.max(0, received - 1)}`, 'docker-upload-uuid': id })
  }

  /**
   * PUT ?digest=: the last chunk (the body, if any; with a Content-Range it must continue the
   * upload, else 416 and the session stays), then the digest checked and the blob committed.
   */
  private async put (req: IncomingMessage, res: ServerResponse, repo: string, id: string, url: URL): Promise<void> {
    const digest = url.searchParams.get('digest') ?? ''
    if (!isDigest(digest)) {
      throw new OciError(400, 'DIGEST_INVALID', `PUT of an upload needs ?digest=sha256:<64 lowercase hex>, not "${digest.slice(0, 100)}"`)
    }
    await this.init.uploads.append(repo, id, req, { start: rangeStart(req), length: contentLength(req.headers['content-length']) })
    await this.commit(res, repo, id, digest)
  }

  private async commit (res: ServerResponse, repo: string, id: string, digest: Digest): Promise<void> {
    const size = await this.init.uploads.finish(repo, id, digest)
    this.init.stats.inc('bytes_pushed', size)
    await this.pushed(repo, digest)
    send(res, 201, { location: `/v2/${repo}/blobs/${digest}`, 'docker-content-digest': digest })
  }

  /** A blob is in `repo` now: kept for CACHE_LOCAL_TTL, and on its way to the replicas already. */
  private async pushed (repo: string, digest: Digest): Promise<void> {
    await this.init.store.keepUntil(digest, this.now() + this.init.ttlMs)
    this.init.replicas.prefetch(repo, { digest })
  }

  private now (): number {
    return (this.init.now ?? Date.now)()
  }

  private uploadStatus (res: ServerResponse, repo: string, id: string, status: number): void {
    const offset = this.init.uploads.offset(repo, id)
    if (offset === undefined) throw new OciError(404, 'BLOB_UPLOAD_UNKNOWN', `no upload ${id.slice(0, 64)} for ${repo}`)
    send(res, status, { location: `/v2/${repo}/blobs/uploads/${id}`, range: `0-${Math.max(0, offset - 1)}`, 'docker-upload-uuid': id })
  }

  /**
   * PUT of a manifest (by tag or digest): a known manifest media type, at most 4 MiB, every blob
   * (or manifest, for an index) it references already here (OCI: MANIFEST_BLOB_UNKNOWN). Stored
   * by its digest; a tag is recorded as this node's newest write.
   */
  private async putManifest (req: IncomingMessage, res: ServerResponse, repo: string, reference: string): Promise<void> {
    if (!isDigest(reference) && !isTag(reference)) {
      throw new OciError(400, 'TAG_INVALID', `${reference.slice(0, 130)} is neither a tag nor a digest`)
    }
    const body = await readBounded(req, MAX_MANIFEST_BYTES)
    if (body === undefined) throw new OciError(413, 'SIZE_INVALID', `a manifest is at most ${MAX_MANIFEST_BYTES} bytes`)
    let parsed: {
      mediaType?: unknown
      config?: { digest?: unknown }
      layers?: Array<{ digest?: unknown }>
      manifests?: Array<{ digest?: unknown }>
      subject?: { digest?: unknown }
    }
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed
    } catch {
      throw new OciError(400, 'MANIFEST_INVALID', 'the manifest is not JSON')
    }
    const headerType = mediaTypeOf(req.headers['content-type'])
    const mediaType = typeof parsed.mediaType === 'string' ? parsed.mediaType : headerType
    if (!MANIFEST_TYPES.includes(mediaType)) {
      throw new OciError(
        400,
        'MANIFEST_INVALID',
        `media type "${mediaType.slice(0, 100)}" is not an image manifest or index (${MANIFEST_TYPES.join(', ')})`
      )
    }
    const digest = sha256Digest(body)
    if (isDigest(reference) && reference !== digest) {
      throw new OciError(400, 'DIGEST_INVALID', `the manifest is ${digest}, not ${reference}`)
    }
    const referenced = INDEX_TYPES.includes(mediaType)
      ? (parsed.manifests ?? []).map(d => d.digest)
      : [parsed.config?.digest, ...(parsed.layers ?? []).map(d => d.digest)]
    const keys: HoldKey[] = []
    for (const ref of referenced) {
      if (typeof ref !== 'string' || !isDigest(ref)) {
        throw new OciError(400, 'MANIFEST_INVALID', `the manifest references "${String(ref).slice(0, 100)}", which is not a digest`)
      }
      // HEAD may have said a blob exists because a peer or the bucket has it: fetched now.
      const record = await this.init.store.stat(ref) ?? (await this.swarm.fetch(repo, ref) ? await this.init.store.stat(ref) : undefined)
      if (record === undefined) {
        throw new OciError(
          400,
          'MANIFEST_BLOB_UNKNOWN',
          `${ref} is not here: push the blobs (and, for an index, the manifests) it references first`,
          { digest: ref }
        )
      }
      keys.push({ digest: ref, ...(record.mediaType !== undefined ? { mediaType: record.mediaType } : {}) })
    }
    await this.init.store.put(digest, body, `push ${repo}`, { mediaType })
    keys.push({ digest, mediaType })
    const keepUntil = this.now() + this.init.ttlMs
    for (const key of keys) await this.init.store.keepUntil(key.digest, keepUntil)
    const name = `${repo}:${reference}`
    const tag: LocalTag | undefined = isDigest(reference)
      ? undefined
      : { digest, mediaType, size: body.byteLength, pushedAt: this.now(), writer: this.init.self }
    // Acknowledged only once other nodes hold it all: the runner may be destroyed right after.
    const waiting = performance.now()
    let holders: string[]
    try {
      holders = await this.init.replicas.place(
        repo,
        keys,
        tag === undefined || !this.init.tags.shared ? [] : [{ key: this.init.tags.key(name), value: JSON.stringify(tag) }]
      )
    } catch (err) {
      if (err instanceof ReplicaPlacementError) this.init.stats.inc('replication_failures')
      throw err
    } finally {
      this.init.stats.inc('replication_wait_seconds', (performance.now() - waiting) / 1000)
    }
    // The bucket keeps the push once the fleet scales to zero: content first, then the tag (tags.put).
    for (const key of keys) this.init.bucket?.uploadBlob(key.digest)
    if (tag !== undefined) await this.init.tags.put(name, tag, { after: keys.map(k => k.digest) })
    this.init.stats.inc('pushes')
    this.init.log.info({ repo, reference, digest, replicas: holders }, 'manifest pushed')
    send(res, 201, { location: `/v2/${repo}/manifests/${digest}`, 'docker-content-digest': digest })
  }

  private async getManifest (res: ServerResponse, repo: string, reference: string, head: boolean): Promise<void> {
    let digest: Digest
    let mediaType: string | undefined
    if (isDigest(reference)) digest = reference
    else {
      const tag = await this.init.tags.find(`${repo}:${reference}`)
      if (tag === undefined || tag.value.deleted === true) {
        throw new OciError(
          404,
          'MANIFEST_UNKNOWN',
          `${repo}:${reference.slice(0, 130)} was not pushed to the swarm, or its tag was deleted`
        )
      }
      digest = tag.value.digest
      mediaType = tag.value.mediaType
    }
    const source = await this.open(repo, digest, 'MANIFEST_UNKNOWN')
    try {
      const body = await readAll(source.stream(0, source.size), MAX_MANIFEST_BYTES)
      mediaType ??= source.mediaType ?? manifestTypeOfBody(body) ?? OCI_MANIFEST
      res.writeHead(200, {
        ...API_VERSION,
        'content-type': mediaType,
        'content-length': body.byteLength,
        'docker-content-digest': digest,
        etag: `"${digest}"`,
        'x-cache': source.cache,
        'x-cache-source': source.origin,
        ...cacheDateHeader(source.cache, source.storedAt)
      })
      res.end(head ? undefined : body)
    } finally {
      await source.release()
    }
  }

  /** `digest` from the store, else from a peer; 404 `code` when no runner has it. */
  private async open (repo: string, digest: Digest, code: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN'): Promise<BlobSource> {
    return await this.swarm.open(
      repo,
      digest,
      () => new OciError(404, code, `${digest} is on no runner of the swarm (pushed to one that left, or evicted)`)
    )
  }

  /** DELETE of a tag: a newer write that says so; a manifest by digest stays (other tags or indexes may name it). */
  private async deleteManifest (res: ServerResponse, repo: string, reference: string): Promise<void> {
    if (isDigest(reference)) {
      throw new OciError(405, 'UNSUPPORTED', 'manifests are deleted by tag here; a digest stays while the store keeps it')
    }
    const tag = await this.init.tags.find(`${repo}:${reference}`)
    if (tag === undefined || tag.value.deleted === true) {
      throw new OciError(404, 'MANIFEST_UNKNOWN', `${repo}:${reference.slice(0, 130)} is not tagged`)
    }
    await this.init.tags.put(`${repo}:${reference}`, {
      ...tag.value,
      pushedAt: Math.max((this.init.now ?? Date.now)(), tag.value.pushedAt + 1),
      writer: this.init.self,
      deleted: true
    })
    send(res, 202)
  }

  private async getBlob (req: IncomingMessage, res: ServerResponse, repo: string, digest: Digest, head: boolean): Promise<void> {
    const source = await this.open(repo, digest, 'BLOB_UNKNOWN')
    try {
      const headers = { ...API_VERSION, 'content-type': 'application/octet-stream', 'docker-content-digest': digest }
      if (head) {
        res.writeHead(200, {
          ...headers,
          ...(source.size !== undefined ? { 'content-length': source.size } : {}),
          etag: `"${digest}"`,
          'x-cache': source.cache,
          'x-cache-source': source.origin,
          ...cacheDateHeader(source.cache, source.storedAt)
        })
        res.end()
        return
      }
      await sendBlob(req, res, source, { etag: `"${digest}"`, headers, rangeHeader: req.headers.range, stats: this.init.stats })
    } finally {
      await source.release()
    }
  }

  /** `tags/list` (OCI: lexical order, `n` and `last` for pages): the swarm's tags of `repo` (RecordTable.names). */
  private async listTags (res: ServerResponse, repo: string, url: URL, head: boolean): Promise<void> {
    const n = Math.min(MAX_TAGS_LISTED, Math.max(0, Number(url.searchParams.get('n') ?? MAX_TAGS_LISTED) || 0))
    const last = url.searchParams.get('last')
    const all = (await this.init.tags.names(repo, MAX_TAGS_LISTED + 1)).map(name => name.slice(repo.length + 1))
    const after = last === null ? all : all.filter(t => t > last)
    const page = after.slice(0, n)
    const headers: Record<string, string> = {}
    if (after.length > page.length && page.length > 0) {
      headers.link = `</v2/${repo}/tags/list?n=${n}&last=${encodeURIComponent(page.at(-1) ?? '')}>; rel="next"`
    }
    const body = JSON.stringify({ name: repo, tags: page })
    res.writeHead(200, { ...API_VERSION, ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(head ? undefined : body)
  }
}

function send (res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...API_VERSION, 'content-length': 0, ...headers })
  res.end()
}

function notAllowed (method: string, path: string): OciError {
  return new OciError(405, 'UNSUPPORTED', `${method} is not supported on ${path.slice(0, 200)}`)
}

function toOciError (err: unknown): OciError {
  if (err instanceof OciError) return err
  if (err instanceof ReplicaPlacementError) {
    return new OciError(
      503,
      'REPLICAS_UNAVAILABLE',
      `the push is not acknowledged: ${err.message}. A push must be held by CACHE_LOCAL_REPLICAS other nodes within CACHE_LOCAL_REPLICA_TIMEOUT, so it survives this runner: push again, or check the peers (p2p-cache diagnose), or change either option`
    )
  }
  if (err instanceof StoreFullError) {
    return new OciError(507, 'DENIED', `the store is full: ${err.message}; raise CACHE_MAX_SIZE or free space on CACHE_DIR's filesystem`)
  }
  return new OciError(500, 'UNSUPPORTED', `internal error: ${(err as Error).message ?? String(err)}`)
}

/** The whole of `stream`, at most `limit` bytes. @throws OciError 502 past the limit */
async function readAll (stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const body = await readBounded(stream as Readable, limit)
  if (body === undefined) throw new OciError(502, 'MANIFEST_INVALID', `a manifest larger than ${limit} bytes`)
  return body
}

/** Where a chunk starts, by its Content-Range (`<start>-<end>`, OCI); undefined without one. */
function rangeStart (req: IncomingMessage): number | undefined {
  const range = /^(?:bytes=)?(\d+)-(\d+)$/.exec(String(req.headers['content-range'] ?? ''))
  return range === null ? undefined : Number(range[1])
}
