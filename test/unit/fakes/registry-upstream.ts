import type { AbortOptions } from '@libp2p/interface'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { RegistryUpstream, UpstreamResponse } from '../../../src/upstream/registry-upstream.js'
import { UpstreamRateLimitedError, UpstreamStatusError, UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import { readLimited } from '../../../src/io/bounded-body.js'
import { DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/media-types.js'

/** `sha256:<hex>` of `data`. */
export function sha256 (data: Uint8Array | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

/**
 * Something to go wrong on a path (see FakeRegistryUpstream.fault). Each applies to the next
 * `times` requests matching it (default 1; `Infinity` for every one), then is spent.
 * - `status`: answer `status` instead (429 → UpstreamRateLimitedError with `retryAfter`; 5xx →
 *   UpstreamUnavailableError, both thrown by `send` like the real client; anything else, e.g. 401
 *   or 404, is returned by `send` and thrown as UpstreamStatusError by `sendOk`).
 * - `connection`: the connection fails (UpstreamUnavailableError without a status).
 * - `drop`: headers and the first `afterBytes` body bytes are sent, then the body errors
 *   (like a reset socket: `for await` over it throws).
 * - `corrupt`: the body has the right length but a wrong byte (its last byte flipped).
 * - `stall`: headers and the first `afterBytes` body bytes are sent, then nothing more until
 *   the request's AbortSignal fires (the body then errors with its reason) or the fake is closed.
 * - `delay`: the headers wait `ms` milliseconds (a number), or until a promise settles, or
 *   forever (`Infinity`); an abort ends the wait with the signal's reason.
 */
export type Fault =
  | { kind: 'status', status: number, retryAfter?: string, body?: string, times?: number }
  | { kind: 'connection', times?: number }
  | { kind: 'drop', afterBytes: number, times?: number }
  | { kind: 'corrupt', times?: number }
  | { kind: 'stall', afterBytes?: number, times?: number }
  | { kind: 'delay', ms: number | Promise<unknown>, times?: number }

/** One request the fake received. */
export interface RecordedRequest {
  method: 'GET' | 'HEAD'
  repo: string
  path: string
  headers: Record<string, string>
}

/** A manifest as the fake serves it. */
export interface StoredManifest {
  mediaType: string
  body: Buffer
}

/** What addImage created, digests included. */
export interface FakeImage {
  repo: string
  tag: string | undefined
  digest: `sha256:${string}`
  manifest: Buffer
  mediaType: string
  config: { digest: `sha256:${string}`, body: Buffer }
  layers: Array<{ digest: `sha256:${string}`, body: Buffer }>
}

interface Repository {
  manifests: Map<string, StoredManifest>
  tags: Map<string, string>
  blobs: Map<string, Buffer>
}

interface FaultEntry {
  method?: 'GET' | 'HEAD'
  path: string
  fault: Fault
  left: number
}

export interface FakeRegistryUpstreamInit {
  /** The upstream's name, as in CACHE_REGISTRY_UPSTREAMS (default `docker.io`). */
  name?: string
  /** Its URL (default `https://registry-1.docker.io`); nothing is ever sent there. */
  url?: string
  /** Body chunk size in bytes (default 16 KiB): a body is pushed one chunk per read. */
  chunkSize?: number
  /** Whether blob GETs honour `Range` (default true); when false a Range gets the whole blob, 200. */
  ranges?: boolean
  /** Whether manifest answers carry Docker-Content-Digest (default true; some registries omit it on HEAD). */
  digestHeader?: boolean
}

const JSON_TYPE = 'application/json; charset=utf-8'

/**
 * An in-memory upstream registry (OCI distribution spec, pull side) for unit tests, behaving
 * like RegistryClient over a real registry where the resolvers and routes can tell:
 *
 * - content: `addBlob(repo, bytes)`, `addManifest(repo, body, mediaType, tag?)`,
 *   `addImage(repo, tag, { layers, ... })` (config + layers + manifest, digests computed),
 *   `addIndex(repo, tag, manifests)`, `tag(repo, tag, digest)`, `untag(repo, tag)`.
 * - answers: `GET|HEAD /v2/<repo>/manifests/<tag|digest>` (Content-Type, Content-Length,
 *   Docker-Content-Digest; 404 MANIFEST_UNKNOWN when the manifest's type is not in a concrete
 *   Accept, as distribution does), `GET|HEAD /v2/<repo>/blobs/<digest>` (Accept-Ranges,
 *   `Range: bytes=a-b|a-` → 206 + Content-Range, unsatisfiable → 416), `GET /v2/<repo>/tags/list`
 *   (`?n=&last=` pagination with a Link header), `GET /v2/<repo>/referrers/<digest>`
 *   (`?artifactType=` filter); lists carry an ETag and answer `If-None-Match` with 304; unknown
 *   repos, manifests and blobs get 404 with an OCI error body (NAME_UNKNOWN, MANIFEST_UNKNOWN,
 *   BLOB_UNKNOWN). `GET /v2/` answers 200 `{}`.
 * - `send` throws UpstreamRateLimitedError on 429 (with Retry-After), UpstreamUnavailableError on
 *   5xx and connection failures, the signal's reason when aborted; `sendOk` also throws
 *   UpstreamStatusError for any other non-2xx, with the body it read.
 * - faults: `fault(path, fault, method?)` (see Fault), matched on the path without its query.
 * - counters: `requests` (every request, in order), `count(method, path)`, `bytesSent` (body
 *   bytes pushed to readers), `open` (bodies not yet ended or destroyed).
 *
 * Bodies are Readables that push one `chunkSize` chunk per `read()`, so a slow reader holds the
 * fake back as a TCP window would. `close()` destroys the bodies still open and ends pending delays.
 */
export class FakeRegistryUpstream implements RegistryUpstream {
  readonly name: string
  readonly url: URL
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = []
  /** Body bytes pushed to readers so far (all paths). */
  bytesSent = 0
  private readonly repos = new Map<string, Repository>()
  private readonly faults: FaultEntry[] = []
  private readonly bodies = new Set<Readable>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly waiters = new Set<(err: Error) => void>()
  private readonly chunkSize: number
  private readonly ranges: boolean
  private readonly digestHeader: boolean
  private closed = false

  constructor (init: FakeRegistryUpstreamInit = {}) {
    this.name = init.name ?? 'docker.io'
    this.url = new URL(init.url ?? 'https://registry-1.docker.io')
    this.chunkSize = init.chunkSize ?? 16 * 1024
    this.ranges = init.ranges ?? true
    this.digestHeader = init.digestHeader ?? true
  }

  // ---- content ----

  /** Stores `bytes` as a blob of `repo`; returns its digest. */
  addBlob (repo: string, bytes: Buffer | string): `sha256:${string}` {
    const body = Buffer.from(bytes)
    const digest = sha256(body)
    this.repo(repo).blobs.set(digest, body)
    return digest
  }

  /** Stores a manifest (of `mediaType`) in `repo`, tagged `tag` when given; returns its digest. */
  addManifest (repo: string, body: Buffer | string | object, mediaType: string, tag?: string): `sha256:${string}` {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
    const digest = sha256(bytes)
    const r = this.repo(repo)
    r.manifests.set(digest, { mediaType, body: bytes })
    if (tag !== undefined) r.tags.set(tag, digest)
    return digest
  }

  /**
   * An OCI image in `repo`: a config blob, one blob per entry of `layers` (bytes, or a size for
   * that many deterministic pseudo-random bytes), and an OCI manifest referring to them, tagged
   * `tag` (unless undefined). `subject` makes it an artifact listed by the referrers API.
   */
  addImage (
    repo: string,
    tag: string | undefined,
    opts: {
      layers?: Array<Buffer | number>
      config?: object
      mediaType?: string
      artifactType?: string
      subject?: { digest: string, mediaType: string, size: number }
      annotations?: Record<string, string>
    } = {}
  ): FakeImage {
    const configBody = Buffer.from(
      JSON.stringify(opts.config ?? { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })
    )
    const config = { digest: this.addBlob(repo, configBody), body: configBody }
    const layers = (opts.layers ?? [1024]).map((l, i) => {
      const body = typeof l === 'number' ? pseudoRandom(l, `${repo}:${tag ?? ''}:${i}`) : l
      return { digest: this.addBlob(repo, body), body }
    })
    const mediaType = opts.mediaType ?? OCI_MANIFEST
    const manifestJson = {
      schemaVersion: 2,
      mediaType,
      ...(opts.artifactType !== undefined ? { artifactType: opts.artifactType } : {}),
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: configBody.byteLength },
      layers: layers.map(l => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.body.byteLength })),
      ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
      ...(opts.annotations !== undefined ? { annotations: opts.annotations } : {})
    }
    const manifest = Buffer.from(JSON.stringify(manifestJson))
    const digest = this.addManifest(repo, manifest, mediaType, tag)
    return { repo, tag, digest, manifest, mediaType, config, layers }
  }

  /** An index (OCI by default) in `repo` over `images`, tagged `tag`; returns its digest and body. */
  addIndex (
    repo: string,
    tag: string | undefined,
    images: FakeImage[],
    mediaType: string = OCI_INDEX
  ): { digest: `sha256:${string}`, body: Buffer, mediaType: string } {
    const platforms = ['amd64', 'arm64', 'arm', 's390x']
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map((img, i) => ({
        mediaType: img.mediaType,
        digest: img.digest,
        size: img.manifest.byteLength,
        platform: { os: 'linux', architecture: platforms[i % platforms.length] }
      }))
    }))
    return { digest: this.addManifest(repo, body, mediaType, tag), body, mediaType }
  }

  /** Points `tag` of `repo` at the manifest `digest` (which must be stored). */
  tag (repo: string, tag: string, digest: string): void {
    const r = this.repo(repo)
    if (!r.manifests.has(digest)) throw new Error(`fake upstream: no manifest ${digest} in ${repo}`)
    r.tags.set(tag, digest)
  }

  /** Removes `tag` from `repo` (its manifest stays reachable by digest). */
  untag (repo: string, tag: string): void {
    this.repos.get(repo)?.tags.delete(tag)
  }

  // ---- faults and counters ----

  /**
   * Makes the next `fault.times` (default 1) requests to `path` (matched without its query;
   * `method` to match only GET or HEAD) go wrong as `fault` says. Faults on one path apply in
   * the order they were added.
   */
  fault (path: string, fault: Fault, method?: 'GET' | 'HEAD'): void {
    this.faults.push({ path, fault, left: fault.times ?? 1, ...(method !== undefined ? { method } : {}) })
  }

  /** Removes every fault not yet spent. */
  clearFaults (): void {
    this.faults.length = 0
  }

  /** Requests received for `method` on `path` (with or without its query: `path` without one matches both). */
  count (method: 'GET' | 'HEAD', path: string): number {
    return this.requests.filter(r => r.method === method && (r.path === path || (!path.includes('?') && r.path.split('?')[0] === path)))
      .length
  }

  /** Bodies handed out and not yet ended or destroyed. */
  get open (): number {
    return this.bodies.size
  }

  // ---- RegistryUpstream ----

  async send (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    const { signal } = options
    const lower: Record<string, string> = {}
    for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v
    this.requests.push({ method, repo, path, headers: lower })
    if (signal?.aborted === true) throw abortReason(signal)
    if (this.closed) throw new UpstreamUnavailableError(this.name, `${method} ${path}: client closed`)
    const fault = this.takeFault(method, path.split('?')[0] ?? path)
    if (fault?.kind === 'delay') await this.wait(fault.ms, signal)
    if (fault?.kind === 'connection') {
      throw new UpstreamUnavailableError(this.name, `${method} ${this.url.origin}${path.split('?')[0] ?? ''}: connect ECONNREFUSED`)
    }
    if (fault?.kind === 'status') {
      const text = fault.body ?? (fault.status === 429 ? errorBody('TOOMANYREQUESTS', 'rate limit exceeded') : `${fault.status} fault`)
      if (fault.status === 429) {
        throw new UpstreamRateLimitedError(this.name, `${method} ${path} answered 429 ${text.slice(0, 200)}`.trim(), fault.retryAfter)
      }
      if (fault.status >= 500) {
        throw new UpstreamUnavailableError(
          this.name,
          `${method} ${path} answered ${fault.status} ${text.slice(0, 200)}`.trim(),
          fault.status
        )
      }
      return this.respond(method, fault.status, { 'content-type': JSON_TYPE }, Buffer.from(text), signal)
    }
    const answer = this.answer(method, repo, path, lower)
    let body = answer.body
    if (fault?.kind === 'corrupt' && body.byteLength > 0) {
      body = Buffer.from(body)
      body[body.byteLength - 1] = (body[body.byteLength - 1] ?? 0) ^ 0xff
    }
    const cut = fault?.kind === 'drop'
      ? { at: fault.afterBytes, how: 'drop' as const }
      : fault?.kind === 'stall'
      ? { at: fault.afterBytes ?? 0, how: 'stall' as const }
      : undefined
    return this.respond(method, answer.status, answer.headers, body, signal, cut)
  }

  async sendOk (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<UpstreamResponse> {
    const res = await this.send(method, repo, path, headers, options)
    if (res.status < 200 || res.status > 299) {
      const text = method === 'HEAD' ? '' : await readLimited(res.body, 64 * 1024)
      if (method === 'HEAD') res.body.destroy()
      throw new UpstreamStatusError(this.name, res.status, text, res.headers['content-type'])
    }
    return res
  }

  /**
   * Destroys the bodies still open (with an error when something reads them) and ends pending
   * delays; later requests fail as unavailable.
   */
  async close (): Promise<void> {
    this.closed = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    for (const w of this.waiters) w(new UpstreamUnavailableError(this.name, 'client closed'))
    this.waiters.clear()
    // A body someone reads gets an error (it would otherwise hang); an unread one just goes.
    for (const b of this.bodies) {
      b.destroy(b.listenerCount('error') > 0 ? new UpstreamUnavailableError(this.name, 'client closed') : undefined)
    }
    this.bodies.clear()
  }

  // ---- internals ----

  private repo (name: string): Repository {
    let r = this.repos.get(name)
    if (r === undefined) {
      r = { manifests: new Map(), tags: new Map(), blobs: new Map() }
      this.repos.set(name, r)
    }
    return r
  }

  private takeFault (method: 'GET' | 'HEAD', path: string): Fault | undefined {
    const i = this.faults.findIndex(f => f.path === path && (f.method === undefined || f.method === method))
    if (i < 0) return undefined
    const entry = this.faults[i] as FaultEntry
    entry.left--
    if (entry.left <= 0) this.faults.splice(i, 1)
    return entry.fault
  }

  private async wait (ms: number | Promise<unknown>, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const done = (err?: Error): void => {
        if (timer !== undefined) {
          clearTimeout(timer)
          this.timers.delete(timer)
        }
        this.waiters.delete(done)
        signal?.removeEventListener('abort', onAbort)
        if (err !== undefined) reject(err)
        else resolve()
      }
      const onAbort = (): void => {
        done(abortReason(signal as AbortSignal))
      }
      this.waiters.add(done)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (typeof ms === 'number') {
        if (Number.isFinite(ms)) {
          timer = setTimeout(() => {
            done()
          }, ms)
          this.timers.add(timer)
        }
      } else {
        ms.then(() => {
          done()
        }, () => {
          done()
        })
      }
    })
  }

  private answer (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>
  ): { status: number, headers: Record<string, string>, body: Buffer } {
    const [pathname = '', query = ''] = path.split('?', 2)
    if (pathname === '/v2/' || pathname === '/v2') {
      return {
        status: 200,
        headers: { 'content-type': JSON_TYPE, 'docker-distribution-api-version': 'registry/2.0' },
        body: Buffer.from('{}')
      }
    }
    const r = this.repos.get(repo)
    const prefix = `/v2/${repo}/`
    if (!pathname.startsWith(prefix)) return notFound('NAME_INVALID', `path ${pathname} is not under repository ${repo}`)
    const rest = pathname.slice(prefix.length)
    if (r === undefined) return notFound('NAME_UNKNOWN', 'repository name not known to registry', { name: repo })
    const params = new URLSearchParams(query)
    let m: RegExpExecArray | null
    if ((m = /^manifests\/([^/]+)$/.exec(rest)) !== null) {
      const ref = m[1] as string
      const digest = ref.startsWith('sha256:') ? ref : r.tags.get(ref)
      const stored = digest === undefined ? undefined : r.manifests.get(digest)
      if (digest === undefined || stored === undefined) return notFound('MANIFEST_UNKNOWN', 'manifest unknown', { tag: ref })
      const accept = (headers.accept ?? '').split(',').map(a => a.split(';')[0]?.trim() ?? '').filter(a => a !== '')
      const concrete = accept.filter(a => !a.includes('*'))
      if (concrete.length > 0 && !concrete.includes(stored.mediaType) && accept.length === concrete.length) {
        return notFound('MANIFEST_UNKNOWN', `manifest of type ${stored.mediaType} is not in the Accept header`, { tag: ref })
      }
      return {
        status: 200,
        headers: {
          'content-type': stored.mediaType,
          'content-length': String(stored.body.byteLength),
          ...(this.digestHeader ? { 'docker-content-digest': digest } : {})
        },
        body: stored.body
      }
    }
    if ((m = /^blobs\/([^/]+)$/.exec(rest)) !== null) {
      const digest = m[1] as string
      const blob = r.blobs.get(digest)
      if (blob === undefined) return notFound('BLOB_UNKNOWN', 'blob unknown to registry', { digest })
      const base = {
        'content-type': 'application/octet-stream',
        'docker-content-digest': digest,
        ...(this.ranges ? { 'accept-ranges': 'bytes' } : {})
      }
      const range = headers.range
      if (range !== undefined && this.ranges && method === 'GET') {
        const rm = /^bytes=(\d+)-(\d*)$/.exec(range.trim())
        if (rm !== null) {
          const start = Number(rm[1])
          const end = rm[2] === '' ? blob.byteLength - 1 : Math.min(Number(rm[2]), blob.byteLength - 1)
          if (start >= blob.byteLength || end < start) {
            return {
              status: 416,
              headers: { 'content-type': JSON_TYPE, 'content-range': `bytes */${blob.byteLength}` },
              body: Buffer.from(errorBody('BLOB_UNKNOWN', 'requested range not satisfiable'))
            }
          }
          const part = blob.subarray(start, end + 1)
          return {
            status: 206,
            headers: { ...base, 'content-length': String(part.byteLength), 'content-range': `bytes ${start}-${end}/${blob.byteLength}` },
            body: part
          }
        }
      }
      return { status: 200, headers: { ...base, 'content-length': String(blob.byteLength) }, body: blob }
    }
    if (rest === 'tags/list') {
      const all = [...r.tags.keys()].sort()
      const last = params.get('last')
      const from = last === null ? all : all.filter(t => t > last)
      const n = params.has('n') ? Number(params.get('n')) : undefined
      const page = n === undefined ? from : from.slice(0, n)
      const more = n !== undefined && from.length > n
      const body = Buffer.from(JSON.stringify({ name: repo, tags: page }))
      return this.list(
        headers,
        body,
        JSON_TYPE,
        more ? { link: `</v2/${repo}/tags/list?n=${n ?? ''}&last=${encodeURIComponent(page[page.length - 1] ?? '')}>; rel="next"` } : {}
      )
    }
    if ((m = /^referrers\/([^/]+)$/.exec(rest)) !== null) {
      const subject = m[1] as string
      const artifactType = params.get('artifactType')
      const manifests: object[] = []
      for (const [digest, stored] of r.manifests) {
        let json: { subject?: { digest?: string }, artifactType?: string, config?: { mediaType?: string }, annotations?: object }
        try {
          json = JSON.parse(stored.body.toString('utf8')) as typeof json
        } catch {
          continue
        }
        if (json.subject?.digest !== subject) continue
        const type = json.artifactType ?? json.config?.mediaType
        if (artifactType !== null && type !== artifactType) continue
        manifests.push({
          mediaType: stored.mediaType,
          digest,
          size: stored.body.byteLength,
          ...(type !== undefined ? { artifactType: type } : {}),
          ...(json.annotations !== undefined ? { annotations: json.annotations } : {})
        })
      }
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }))
      return this.list(headers, body, OCI_INDEX, artifactType !== null ? { 'oci-filters-applied': 'artifactType' } : {})
    }
    return notFound('UNSUPPORTED', `the fake upstream does not serve ${pathname}`)
  }

  /** A list answer with an ETag (its digest), 304 when the client has it. */
  private list (
    headers: Record<string, string>,
    body: Buffer,
    contentType: string,
    extra: Record<string, string>
  ): { status: number, headers: Record<string, string>, body: Buffer } {
    const etag = `"${sha256(body)}"`
    if (headers['if-none-match'] === etag) return { status: 304, headers: { etag, ...extra }, body: Buffer.alloc(0) }
    return { status: 200, headers: { 'content-type': contentType, 'content-length': String(body.byteLength), etag, ...extra }, body }
  }

  private respond (
    method: 'GET' | 'HEAD',
    status: number,
    headers: Record<string, string>,
    content: Buffer,
    signal?: AbortSignal,
    cut?: { at: number, how: 'drop' | 'stall' }
  ): UpstreamResponse {
    const data = method === 'HEAD' ? Buffer.alloc(0) : content
    const headersOut: Record<string, string | undefined> = { ...headers }
    if (method === 'HEAD' && headersOut['content-length'] === undefined) headersOut['content-length'] = String(content.byteLength)
    return { status, headers: headersOut, body: this.body(data, signal, cut) }
  }

  private body (data: Buffer, signal?: AbortSignal, cut?: { at: number, how: 'drop' | 'stall' }): Readable {
    let pos = 0
    const limit = cut === undefined ? data.byteLength : Math.min(cut.at, data.byteLength)
    const stalls = cut?.how === 'stall' && cut.at < data.byteLength
    const drops = cut?.how === 'drop' && cut.at < data.byteLength
    const bodies = this.bodies
    const onAbort = (): void => {
      body.destroy(abortReason(signal as AbortSignal))
    }
    const body = new Readable({
      highWaterMark: this.chunkSize,
      read: () => {
        if (pos < limit) {
          const chunk = data.subarray(pos, Math.min(limit, pos + this.chunkSize))
          pos += chunk.byteLength
          this.bytesSent += chunk.byteLength
          body.push(Buffer.from(chunk))
          return
        }
        if (drops) {
          body.destroy(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))
          return
        }
        if (stalls) return
        body.push(null)
      },
      destroy: (err, cb) => {
        bodies.delete(body)
        signal?.removeEventListener('abort', onAbort)
        cb(err)
      }
    })
    body.once('end', () => {
      bodies.delete(body)
      signal?.removeEventListener('abort', onAbort)
    })
    bodies.add(body)
    signal?.addEventListener('abort', onAbort, { once: true })
    return body
  }
}

function abortReason (signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('This operation was aborted', 'AbortError')
}

function errorBody (code: string, message: string, detail: object = {}): string {
  return JSON.stringify({ errors: [{ code, message, detail }] })
}

function notFound (code: string, message: string, detail: object = {}): { status: number, headers: Record<string, string>, body: Buffer } {
  return { status: 404, headers: { 'content-type': JSON_TYPE }, body: Buffer.from(errorBody(code, message, detail)) }
}

/** `size` deterministic bytes derived from `seed` (a layer's content). */
export function pseudoRandom (size: number, seed: string): Buffer {
  const out = Buffer.alloc(size)
  let block = createHash('sha256').update(seed).digest()
  for (let at = 0; at < size; at += block.byteLength) {
    block.copy(out, at, 0, Math.min(block.byteLength, size - at))
    block = createHash('sha256').update(block).digest()
  }
  return out
}

export { DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST }
