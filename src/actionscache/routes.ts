import type { AbortOptions } from '@libp2p/interface'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { z } from 'zod'
import { isDigest, type Digest } from '../oci/digest.js'
import type { Stats } from '../metrics/stats.js'
import type { RecordTable } from '../records/swarm-records.js'
import type { SwarmBlobs } from '../resolver/swarm-blob.js'
import { sendBlob } from '../http/send-blob.js'
import { leftMidRequest } from '../http/client-left.js'
import { sendJson } from '../http/respond.js'
import { readBounded } from '../io/bounded-body.js'
import { StoreFullError } from '../store/errors.js'
import { entryName, matchEntry, type CacheEntry, type EntryPlace } from './cache-entries.js'
import { CacheUploadError, type CacheUploads } from './cache-uploads.js'
import { parseRuntimeToken, readScopes, RuntimeTokenError, writeScope, type RuntimeToken } from './runtime-token.js'
import {
  ANNOUNCE_WAIT_MS,
  DOWNLOAD_PREFIX,
  MAX_KEY_CHARS,
  MAX_RESTORE_KEYS,
  MAX_TWIRP_BODY,
  TWIRP_SERVICE,
  UPLOAD_PREFIX
} from './constants.js'
import type { BucketTier } from '../bucket/bucket-tier.js'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

export interface ActionsCacheRoutesInit {
  entries: RecordTable<CacheEntry>
  uploads: CacheUploads
  blobs: SwarmBlobs
  /** This node's peer ID (an entry's writer). */
  self: string
  /** Announces an archive on the DHT and resolves once done (Swarm.provideNow); undefined without P2P. */
  provideNow?: ((keys: Digest[], options?: AbortOptions) => Promise<void>) | undefined
  /** The bucket (CACHE_S3_URL): saved archives are uploaded to it. */
  bucket?: Pick<BucketTier, 'uploadBlob'> | undefined
  stats: Pick<Stats, 'inc'>
  log: Logger
  now?: () => number
}

/** A Twirp error (`{code, msg}`, https://twitchtv.github.io/twirp/docs/spec_v7.html) with its HTTP status. */
class TwirpError extends P2pCacheError {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

const TWIRP = new RegExp(`/twirp/${TWIRP_SERVICE.replace(/\./g, '\\.')}/([A-Za-z]+)$`)
const keyText = z.string().min(1).max(MAX_KEY_CHARS).refine(k => !k.includes(','), 'a key has no commas')
const version = z.string().min(1).max(MAX_KEY_CHARS)
const createSchema = z.object({ key: keyText, version })
// The toolkit sends int64 as a string, BuildKit as a number.
const finalizeSchema = z.object({
  key: keyText,
  version,
  size_bytes: z.union([z.string().regex(/^\d{1,16}$/), z.number().int().min(0)]).transform(Number)
})
const lookupSchema = z.object({ key: keyText, version, restore_keys: z.array(keyText).max(MAX_RESTORE_KEYS).optional() })

/**
 * The Actions cache service v2 on the sidecar (issue 26): the Twirp RPCs `@actions/cache` and
 * BuildKit's `type=gha` call (CreateCacheEntry, FinalizeCacheEntryUpload,
 * GetCacheEntryDownloadURL, under `/twirp/…` at any path prefix, as BuildKit keeps its url_v2's
 * path), the Azure Blob uploads they send to the URL handed out, and the downloads. Entries are
 * swarm records keyed by (repository, scope, version, key); their archives are blobs of the store,
 * fetched from peers when not here.
 */
export class ActionsCacheRoutes {
  constructor (private readonly init: ActionsCacheRoutesInit) {}

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname
    const twirp = TWIRP.exec(path)
    if (twirp !== null && req.method === 'POST') {
      await this.twirp(req, res, twirp[1] as string)
      return true
    }
    if (path.startsWith(UPLOAD_PREFIX) && req.method === 'PUT') {
      await this.upload(req, res, url)
      return true
    }
    if (path.startsWith(DOWNLOAD_PREFIX) && (req.method === 'GET' || req.method === 'HEAD')) {
      await this.download(req, res, url)
      return true
    }
    return false
  }

  private async twirp (req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    try {
      const token = parseRuntimeToken(req.headers.authorization, this.now())
      const body = await readBounded(req, MAX_TWIRP_BODY)
      if (body === undefined) throw new TwirpError(400, 'malformed', `a request body is at most ${MAX_TWIRP_BODY} bytes`)
      let json: unknown
      try {
        json = JSON.parse(body.toString('utf8'))
      } catch {
        throw new TwirpError(400, 'malformed', 'the request body is not JSON')
      }
      const base = `${(req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http'}://${req.headers.host ?? '127.0.0.1'}`
      if (method === 'CreateCacheEntry') sendJson(res, 200, await this.create(token, parse(createSchema, json), base))
      else if (method === 'FinalizeCacheEntryUpload') sendJson(res, 200, await this.finalize(token, parse(finalizeSchema, json)))
      else if (method === 'GetCacheEntryDownloadURL') sendJson(res, 200, await this.lookup(token, parse(lookupSchema, json), base))
      else throw new TwirpError(404, 'bad_route', `no method ${method.slice(0, 64)} on ${TWIRP_SERVICE}`)
    } catch (err) {
      const e = err instanceof TwirpError
        ? err
        : err instanceof RuntimeTokenError
        ? new TwirpError(401, 'unauthenticated', err.message)
        : err instanceof CacheUploadError
        ? new TwirpError(err.status, err.code, err.message)
        : new TwirpError(500, 'internal', (err as Error).message)
      if (e.status >= 500) this.init.log.warn({ method, err: e.message }, 'actions cache request failed')
      if (!res.headersSent) sendJson(res, e.status, { code: e.code, msg: e.message })
      else res.destroy()
    }
  }

  /** CreateCacheEntry: an upload URL, unless the entry exists in the job's write scope (409 already_exists, as GitHub). */
  private async create (token: RuntimeToken, req: { key: string, version: string }, base: string): Promise<object> {
    const place = this.writePlace(token, req.version)
    const name = entryName(place, req.key)
    if (name === undefined) throw new TwirpError(400, 'invalid_argument', 'the key is too long to share with the swarm')
    if (await this.init.entries.find(name) !== undefined || this.init.uploads.find({ ...place, key: req.key }) !== undefined) {
      throw new TwirpError(409, 'already_exists', 'cache entry with the same key, version, and scope already exists')
    }
    const id = await this.init.uploads.start({ ...place, key: req.key })
    return { ok: true, signed_upload_url: `${base}${UPLOAD_PREFIX}${id}/cache` }
  }

  /** FinalizeCacheEntryUpload: the uploaded archive becomes the entry, if its size is the one stated. */
  private async finalize (token: RuntimeToken, req: { key: string, version: string, size_bytes: number }): Promise<object> {
    const place = this.writePlace(token, req.version)
    const pending = { ...place, key: req.key }
    const id = this.init.uploads.find(pending)
    if (id === undefined) return { ok: false, message: 'no upload to finalize for this key and version (CreateCacheEntry first)' }
    let blob
    try {
      blob = await this.init.uploads.finish(id, pending, req.size_bytes)
    } catch (err) {
      if (err instanceof CacheUploadError) return { ok: false, message: err.message }
      throw err
    }
    const name = entryName(place, req.key) as string
    // Findable on every node once acknowledged, the entry and its archive: the next job
    // restores it on another runner.
    const announced = AbortSignal.timeout(ANNOUNCE_WAIT_MS)
    // The archive outlives the fleet in the bucket; the entry follows it there (entries.put).
    this.init.bucket?.uploadBlob(blob.digest)
    await Promise.all([
      this.init.entries.put(
        name,
        { key: req.key, digest: blob.digest, size: blob.size, createdAt: this.now(), writer: this.init.self },
        { announced, after: [blob.digest] }
      ),
      this.init.provideNow?.([blob.digest], { signal: announced }).catch(() => {})
    ])
    this.init.stats.inc('actions_cache_saves')
    this.init.log.info({ key: req.key, scope: place.scope, size: blob.size, digest: blob.digest }, 'actions cache entry saved')
    // int64 as a JSON string: BuildKit decodes it into a Go string.
    return { ok: true, entry_id: String(Number.parseInt(blob.digest.slice(7, 20), 16)) }
  }

  /** GetCacheEntryDownloadURL: the first match in GitHub's order, or `ok: false` (a miss; never a 404, which fails BuildKit). */
  private async lookup (
    token: RuntimeToken,
    req: { key: string, version: string, restore_keys?: string[] | undefined },
    base: string
  ): Promise<object> {
    const places: EntryPlace[] = readScopes(token).map(scope => ({ repository: token.repository, scope, version: req.version }))
    const match = await matchEntry(this.init.entries, places, req.key, (req.restore_keys ?? []).filter(k => k !== req.key))
    if (match === undefined) {
      this.init.stats.inc('actions_cache_misses')
      return { ok: false }
    }
    this.init.stats.inc('actions_cache_hits')
    this.init.log.info({ key: req.key, matched: match.entry.key, scope: match.scope, exact: match.exact }, 'actions cache hit')
    return { ok: true, signed_download_url: `${base}${DOWNLOAD_PREFIX}${match.entry.digest}/cache`, matched_key: match.entry.key }
  }

  /** Where a job writes: its token's write scope. @throws TwirpError 403 without one */
  private writePlace (token: RuntimeToken, version: string): EntryPlace {
    const scope = writeScope(token)
    if (scope === undefined) throw new TwirpError(403, 'permission_denied', 'the runtime token grants no scope with write permission (ac)')
    return { repository: token.repository, scope, version }
  }

  /** PUT on an upload URL: Put Blob, Put Block (`comp=block&blockid=`), Put Block List (`comp=blocklist`). */
  private async upload (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const id = url.pathname.slice(UPLOAD_PREFIX.length).split('/')[0] ?? ''
    const comp = url.searchParams.get('comp')
    try {
      if (comp === null) await this.init.uploads.putBlob(id, req)
      else if (comp === 'block') await this.init.uploads.putBlock(id, url.searchParams.get('blockid') ?? '', req)
      else if (comp === 'blocklist') {
        const xml = await readBounded(req, 8 * 1024 * 1024)
        if (xml === undefined) throw new CacheUploadError(413, 'RequestBodyTooLarge', 'the block list is too large')
        const ids = [...xml.toString('utf8').matchAll(/<(Latest|Committed|Uncommitted)>([^<]*)<\/\1>/g)].map(m => m[2] as string)
        await this.init.uploads.putBlockList(id, ids)
      } else throw new CacheUploadError(400, 'InvalidQueryParameterValue', `comp=${comp.slice(0, 32)} is not supported`)
      // Azure answers 201; go-actions-cache logs x-ms-request-id (and fails without it).
      res.writeHead(201, azureHeaders({ 'content-length': '0', etag: `"${randomUUID()}"`, 'last-modified': new Date().toUTCString() }))
      res.end()
    } catch (err) {
      if (leftMidRequest(req)) {
        res.destroy()
        return
      }
      const e = err instanceof CacheUploadError
        ? err
        : err instanceof StoreFullError
        ? new CacheUploadError(
          507,
          'InsufficientStorage',
          `the store is full: ${err.message}; raise CACHE_MAX_SIZE or free space on CACHE_DIR's filesystem`
        )
        : new CacheUploadError(500, 'InternalError', (err as Error).message)
      if (e.status >= 500) this.init.log.warn({ err: e.message }, 'actions cache upload failed')
      req.resume()
      const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${e.code}</Code><Message>${escapeXml(e.message)}</Message></Error>`
      res.writeHead(
        e.status,
        azureHeaders({ 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)), 'x-ms-error-code': e.code })
      )
      res.end(body)
    }
  }

  /** GET/HEAD on a download URL: the archive, whole or from `x-ms-range` / `Range` (BuildKit resumes with x-ms-range). */
  private async download (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const digest = url.pathname.slice(DOWNLOAD_PREFIX.length).split('/')[0] ?? ''
    if (!isDigest(digest)) {
      res.writeHead(400, azureHeaders({ 'content-length': '0', 'x-ms-error-code': 'InvalidUri' }))
      res.end()
      return
    }
    let source
    try {
      source = await this.init.blobs.open(
        'actions-cache',
        digest,
        () => new CacheUploadError(404, 'BlobNotFound', `${digest} is on no runner of the swarm (evicted, or its runner left)`)
      )
    } catch (err) {
      const status = err instanceof CacheUploadError ? err.status : 502
      res.writeHead(
        status,
        azureHeaders({ 'content-length': '0', 'x-ms-error-code': err instanceof CacheUploadError ? err.code : 'ServerBusy' })
      )
      res.end()
      return
    }
    try {
      const headers = azureHeaders({ 'content-type': 'application/octet-stream', 'x-ms-blob-type': 'BlockBlob' })
      if (req.method === 'HEAD') {
        res.writeHead(200, { ...headers, ...(source.size !== undefined ? { 'content-length': source.size } : {}), etag: `"${digest}"` })
        res.end()
        return
      }
      const range = req.headers['x-ms-range'] ?? req.headers.range
      if (source.cache === 'PEER') this.init.stats.inc('actions_cache_peer_downloads')
      const { stats } = this.init
      // Every byte sent counts as served, and as the cache's.
      const counted = {
        inc: (name: Parameters<Stats['inc']>[0], by?: number) => {
          stats.inc(name, by)
          if (name === 'bytes_served') stats.inc('actions_cache_bytes_served', by)
        }
      }
      await sendBlob(req, res, source, {
        etag: `"${digest}"`,
        headers,
        rangeHeader: Array.isArray(range) ? range[0] : range,
        stats: counted
      })
    } finally {
      await source.release()
    }
  }

  private now (): number {
    return (this.init.now ?? Date.now)()
  }
}

function parse<T> (schema: z.ZodType<T>, json: unknown): T {
  const r = schema.safeParse(json)
  if (!r.success) {
    throw new TwirpError(400, 'invalid_argument', r.error.issues.map(i => `${i.path.join('.')}: ${i.message}`).join('; ').slice(0, 500))
  }
  return r.data
}

/** The headers every Azure Blob answer carries. */
function azureHeaders (headers: Record<string, string>): Record<string, string> {
  return { 'x-ms-request-id': randomUUID(), 'x-ms-version': '2024-11-04', date: new Date().toUTCString(), ...headers }
}

function escapeXml (text: string): string {
  return text.replace(/[<>&'"]/g, c => `&#${c.charCodeAt(0)};`)
}
