import type { AbortOptions } from '@libp2p/interface'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import { z } from 'zod'
import { DigestMismatchError, isDigest, type Digest } from '../oci/digest.js'
import type { BlobResolver } from '../resolver/blob-resolver.js'
import type { StoreWriter } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import { clientLeft } from '../http/client-left.js'
import { UpstreamStatusError } from '../upstream/errors.js'
import { availableOrThrow, okOrThrow, type RegistryClient } from '../upstream/registry-client.js'
import type { RegistryUpstream, UpstreamResponse } from '../upstream/registry-upstream.js'
import type { RecordKind, RecordTable } from '../records/swarm-records.js'
import type { Authority } from './destination.js'
import { pickFields } from './header-fields.js'
import type { InterceptRoute } from './proxy-server.js'
import type { ProxyUpstreams } from './proxy-upstreams.js'
import type { UrlPatterns } from './url-patterns.js'
import { storeTee } from './store-tee.js'
import type { BucketTier } from '../bucket/bucket-tier.js'
import { cacheDateHeader } from '../http/cache-date.js'

/** What a URL on CACHE_PROXY_PATTERNS served: the sha256 of its bytes, their size and type. */
export interface UrlRecord {
  digest: Digest
  size: number
  contentType?: string
}

/**
 * The `url` record kind: `https://host/path?query` → UrlRecord. Shared over the swarm only
 * inside a swarm key (`shared`): a peer that lied about it would make every later download of
 * that URL fail its digest check.
 */
export function urlRecordKind (shared: boolean): RecordKind<UrlRecord> {
  return { kind: 'url', shared, parse: value => urlRecordSchema.safeParse(value).data as UrlRecord | undefined }
}

const urlRecordSchema = z.object({
  digest: z.string().refine(isDigest),
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  contentType: z.string().max(255).optional()
})

export interface DownloadInterceptInit {
  patterns: UrlPatterns
  upstreams: ProxyUpstreams
  /** Stored bytes, peers' copies and verified downloads by digest (the mirror's). */
  blobs: Pick<BlobResolver, 'open'>
  store: Pick<StoreWriter, 'createWriter' | 'commit'>
  records: RecordTable<UrlRecord>
  /** The bucket (CACHE_S3_URL): a URL's first download is uploaded to it (its record goes with records.put). */
  bucket?: Pick<BucketTier, 'uploadBlob'> | undefined
  stats: Pick<Stats, 'inc'>
  log: Logger
}

/** Answer fields a download passes back. */
const DOWNLOAD_RESPONSE = [
  'content-type',
  'content-length',
  'content-encoding',
  'etag',
  'last-modified',
  'cache-control',
  'accept-ranges',
  'content-disposition'
]

/**
 * Immutable downloads on CACHE_PROXY_PATTERNS (issue 24, point 5): an anonymous `GET` of a
 * matching URL whose bytes are known (its `url` record: this node's own, or a swarm member's
 * inside a swarm key) is served by digest like a blob: from the store, from peers, or from the
 * URL again, verified. The first `GET` of a URL is relayed while its bytes are stored under
 * their own sha256, and its record kept. Everything else (other URLs, credentials or cookies,
 * ranges, HEAD, answers other than a plain 200) passes through untouched.
 */
export class DownloadIntercept implements InterceptRoute {
  /** URLs whose first download runs now: a second request waits for it, then reads the store. */
  private readonly learning = new Map<string, Promise<void>>()

  constructor (private readonly init: DownloadInterceptInit) {}

  async handle (target: Authority, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method !== 'GET' || !anonymousWhole(req.headers)) return false
    const url = new URL(req.url ?? '/', `https://${target.host}`)
    if (!this.init.patterns.matches(target.host, url.pathname)) return false
    const client = this.init.upstreams.for(target)
    if (client === undefined) return false
    const name = `${client.url.origin}${url.pathname}${url.search}`
    const path = `${url.pathname}${url.search}`
    const signal = clientLeft(res)
    await this.learning.get(name)
    const record = await this.init.records.find(name, { signal }).catch((err: unknown) => {
      this.init.log.warn({ host: target.host, err: (err as Error).message }, 'url record lookup failed')
      return undefined
    })
    if (record !== undefined && await this.serveStored(client, path, name, record.value, res, { signal })) return true
    const first = this.learn(client, target, path, name, req, res, { signal })
    this.learning.set(
      name,
      first.then(() => {}, () => {}).finally(() => {
        this.learning.delete(name)
      })
    )
    await first
    return true
  }

  /**
   * Serves `record`'s digest through the blob resolver. False, with nothing sent, when the URL
   * no longer serves those bytes (its record is then forgotten and the URL read afresh).
   */
  private async serveStored (
    client: RegistryClient,
    path: string,
    name: string,
    record: UrlRecord,
    res: ServerResponse,
    options: AbortOptions = {}
  ): Promise<boolean> {
    let source
    try {
      source = await this.init.blobs.open(new DownloadUpstream(client, path), 'download', record.digest, options)
    } catch (err) {
      if (!(err instanceof DigestMismatchError || err instanceof UpstreamStatusError)) throw err
      this.init.log.warn(
        { url: name.split('?')[0], digest: record.digest, err: err.message },
        'a URL no longer serves the bytes its record names: record forgotten'
      )
      await this.init.records.delete(name)
      return false
    }
    try {
      res.writeHead(200, {
        'content-type': record.contentType ?? 'application/octet-stream',
        'content-length': source.size ?? record.size,
        etag: `"${record.digest}"`,
        'x-cache': source.cache,
        'x-cache-source': source.origin,
        ...cacheDateHeader(source.cache, source.storedAt)
      })
      const body = source.stream(0, source.size)
      body.on('data', (chunk: Buffer) => {
        this.init.stats.inc('bytes_served', chunk.byteLength)
      })
      await pipeline(body, res)
    } finally {
      await source.release()
    }
    return true
  }

  /**
   * The URL's first download: relayed to the client while written to the store, then committed
   * under the sha256 of its bytes and recorded. Only a complete plain `200` is kept.
   */
  private async learn (
    client: RegistryClient,
    target: Authority,
    path: string,
    name: string,
    req: IncomingMessage,
    res: ServerResponse,
    options: AbortOptions = {}
  ): Promise<void> {
    // No Accept-Encoding: the bytes stored are the file itself, not a transfer encoding of it.
    const up = await client.relay('GET', path, pickFields(req.headers, ['accept', 'user-agent']), options)
    res.writeHead(up.status, { ...pickFields(up.headers, DOWNLOAD_RESPONSE), 'x-cache': 'MISS', 'x-cache-source': target.host })
    if (!storable(up)) {
      await pipeline(up.body, res)
      return
    }
    const notStored = (err: Error): void => {
      this.init.log.warn({ host: target.host, err: err.message }, 'download not stored')
    }
    // A store that can't take a new file (full disk, no descriptors) costs the copy, not the download.
    const writer = await this.init.store.createWriter().catch((err: unknown) => {
      notStored(err as Error)
      return undefined
    })
    if (writer === undefined) {
      await pipeline(up.body, res)
      return
    }
    const tee = storeTee(writer, notStored)
    try {
      await pipeline(up.body, tee.stream, res)
    } catch (err) {
      await writer.abort()
      throw err
    }
    const length = up.headers['content-length']
    if (!tee.copied || (length !== undefined && Number(length) !== writer.bytesWritten)) {
      await writer.abort()
      return
    }
    const digest = writer.keyByContent()
    await this.init.store.commit(
      writer,
      target.host,
      up.headers['content-type'] !== undefined ? { mediaType: up.headers['content-type'] } : {}
    )
    this.init.bucket?.uploadBlob(digest)
    await this.init.records.put(name, {
      digest,
      size: writer.bytesWritten,
      ...(up.headers['content-type'] !== undefined ? { contentType: up.headers['content-type'] } : {})
    })
    this.init.log.info({ host: target.host, path: path.split('?')[0], digest, size: writer.bytesWritten }, 'download stored')
  }
}

/**
 * A URL as the blob resolver's upstream: every request for the blob is a request for the URL
 * (a resumed download sends its `Range`). Statuses as RegistryClient.send gives them.
 */
class DownloadUpstream implements RegistryUpstream {
  readonly name: string
  readonly url: URL

  constructor (private readonly client: RegistryClient, private readonly path: string) {
    this.name = client.name
    this.url = client.url
  }

  async send (
    method: 'GET' | 'HEAD',
    _repo: string,
    _path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    // The query may hold a token: errors name the path only, without the body.
    return await availableOrThrow(
      this.name,
      `${method} ${this.path.split('?')[0] ?? ''}`,
      await this.client.relay(method, this.path, headers, options),
      false
    )
  }

  async sendOk (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    return await okOrThrow(this.name, method, await this.send(method, repo, path, headers, options))
  }

  async close (): Promise<void> {}
}

/** A request the cache may answer for anyone: no credentials, no cookies, the whole body. */
function anonymousWhole (headers: IncomingHttpHeaders): boolean {
  return headers.authorization === undefined && headers.cookie === undefined && headers.range === undefined
}

/** A complete, public, unencoded 200. */
function storable (up: UpstreamResponse): boolean {
  const control = up.headers['cache-control'] ?? ''
  return up.status === 200 && up.headers['content-encoding'] === undefined && up.headers['set-cookie'] === undefined &&
    !/\b(no-store|private)\b/i.test(control)
}
