import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import CachePolicy from 'http-cache-semantics'
import PQueue from 'p-queue'
import { Agent, request, type Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { Upstream } from '../config/options.js'
import type { BlobStore } from '../store/blob-store.js'
import type { Stats } from '../metrics/stats.js'
import { sha256Digest, type Digest } from '../oci/digest.js'
import { endToEnd, rewriteUpstreamUrls, type HeaderMap } from './headers.js'
import type { ApiRecord, ApiRecords } from './records.js'
import type { Scopes } from './scope.js'

export interface ApiRoutesInit {
  upstreams: Upstream[]
  store: BlobStore
  records: ApiRecords
  scopes: Scopes
  stats: Stats
  maxBody: number
  concurrency: number
  timeoutMs: number
  log: Logger
}

type CacheStatus = 'HIT' | 'MISS' | 'REVALIDATED'

interface Answer {
  cache: CacheStatus
  status: number
  headers: HeaderMap
  body: Buffer
}

interface ApiUpstream extends Upstream {
  queue: PQueue
}

/** Request headers that are ours to set, or that would make the upstream answer differently per hop. */
const NOT_FORWARDED = ['host', 'accept-encoding', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'content-length']

/**
 * `/<name>/<path>` → `<upstream>/<path>` with a shared HTTP cache in between (RFC 9111 through
 * http-cache-semantics). Responses are partitioned by credential scope; a response is given to
 * another scope only after that scope's own conditional request succeeded upstream, which a
 * server that counts only full responses (GitHub) answers for free.
 */
export class ApiRoutes {
  private readonly byName: Map<string, ApiUpstream>
  private readonly inflight = new Map<string, Promise<Answer>>()
  private readonly agent: Dispatcher

  constructor (private readonly init: ApiRoutesInit) {
    this.byName = new Map(init.upstreams.map(u => [u.name, { ...u, queue: new PQueue({ concurrency: init.concurrency }) }]))
    this.agent = new Agent({ headersTimeout: init.timeoutMs, bodyTimeout: init.timeoutMs, connect: { timeout: init.timeoutMs } })
  }

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const m = /^\/([^/]+)(\/.*)?$/.exec(url.pathname)
    const upstream = m === null ? undefined : this.byName.get(m[1] ?? '')
    if (upstream === undefined) return false
    const path = `${m?.[2] ?? '/'}${url.search}`
    const sidecarBase = `http://${req.headers.host ?? '127.0.0.1'}/${upstream.name}`
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        await this.pass(req, res, upstream, path, sidecarBase)
        return true
      }
      const headers = endToEnd(req.headers, NOT_FORWARDED)
      const scope = this.init.scopes.of(req.headers.authorization)
      const resource = `${upstream.name} ${path}`
      const key = `${resource}\0${scope}\0${headers.accept ?? ''}`
      let pending = this.inflight.get(key)
      if (pending === undefined) {
        pending = this.resolve(upstream, path, resource, scope, headers).finally(() => this.inflight.delete(key))
        this.inflight.set(key, pending)
      }
      const answer = await pending
      this.init.stats.inc(answer.cache === 'MISS' ? 'misses' : 'hits')
      this.send(req, res, answer, upstream, sidecarBase)
    } catch (err) {
      this.init.stats.inc('errors')
      this.init.log.warn({ upstream: upstream.name, path: url.pathname, err: (err as Error).message }, 'API request failed')
      if (!res.headersSent) {
        const body = JSON.stringify({ message: `p2p-cache: upstream ${upstream.name} failed: ${(err as Error).message}` })
        res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-cache': 'MISS' })
        res.end(body)
      } else {
        res.destroy()
      }
    }
    return true
  }

  async close (): Promise<void> {
    await this.agent.close()
  }

  private async resolve (upstream: ApiUpstream, path: string, resource: string, scope: string, headers: HeaderMap): Promise<Answer> {
    const { records } = this.init
    const policyRequest = { url: path, method: 'GET', headers: { ...headers, host: upstream.url.host } }
    const shared = scope === 'anon'
    const own = await records.get(resource, scope)
    if (own !== undefined) {
      const policy = CachePolicy.fromObject(own.policy)
      // Fresh and shareable without asking: anonymous entries, or ones the server marked public.
      if ((shared || /\bpublic\b/.test(own.headers['cache-control'] ?? '')) && policy.satisfiesWithoutRevalidation(policyRequest)) {
        const body = await this.readBody(own.body)
        if (body !== undefined) return { cache: 'HIT', status: own.status, headers: policy.responseHeaders() as HeaderMap, body }
      }
    }
    // A stored copy (ours, else another scope's) whose validator the requester presents with
    // its own credentials: a 304 proves this requester may have those exact bytes.
    const candidates = own !== undefined ? [own] : await records.all(resource)
    for (const candidate of candidates) {
      const validators: HeaderMap = {}
      if (candidate.headers.etag !== undefined) validators['if-none-match'] = candidate.headers.etag
      else if (candidate.headers['last-modified'] !== undefined) validators['if-modified-since'] = candidate.headers['last-modified']
      else continue
      const body = await this.readBody(candidate.body)
      if (body === undefined) continue
      const res = await this.fetch(upstream, path, { ...headers, ...validators })
      if (res.status !== 304) return await this.fresh(upstream, res, policyRequest, resource, scope)
      // RFC 9111 4.3.4: the 304's headers update the stored ones.
      const merged = { ...candidate.headers, ...endToEnd(res.headers, ['content-length']) }
      await this.store(resource, scope, policyRequest, candidate.status, merged, body, shared)
      this.init.stats.inc('revalidations_304')
      return { cache: 'REVALIDATED', status: candidate.status, headers: merged, body }
    }
    return await this.fresh(upstream, await this.fetch(upstream, path, headers), policyRequest, resource, scope)
  }

  /** A full upstream response: stored when the policy allows, and answered. */
  private async fresh (upstream: ApiUpstream, res: UpstreamAnswer, policyRequest: CachePolicy.Request, resource: string, scope: string): Promise<Answer> {
    const headers = endToEnd(res.headers, ['content-length'])
    if (res.status === 200 && res.body.byteLength <= this.init.maxBody) {
      await this.store(resource, scope, policyRequest, res.status, headers, res.body, scope === 'anon')
    }
    return { cache: 'MISS', status: res.status, headers, body: res.body }
  }

  private async store (resource: string, scope: string, request: CachePolicy.Request, status: number, headers: HeaderMap, body: Buffer, shared: boolean): Promise<void> {
    const policy = new CachePolicy(request, { status, headers }, { shared })
    if (!policy.storable()) return
    const digest = sha256Digest(body)
    if (await this.init.store.stat(digest) === undefined) {
      const writer = await this.init.store.createWriter(digest)
      try {
        await writer.write(body)
      } catch (err) {
        await writer.abort()
        throw err
      }
      await this.init.store.commit(writer, 'api upstream')
    }
    const record: ApiRecord = { policy: policy.toObject(), status, headers, body: digest, size: body.byteLength, scope, storedAt: Date.now() }
    await this.init.records.put(resource, record)
  }

  private async readBody (digest: Digest): Promise<Buffer | undefined> {
    const local = await this.init.store.openRead(digest)
    if (local === undefined) return undefined
    try {
      const chunks: Buffer[] = []
      for await (const chunk of local.stream()) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    } finally {
      await local.release()
    }
  }

  private async fetch (upstream: ApiUpstream, path: string, headers: HeaderMap): Promise<UpstreamAnswer> {
    return await upstream.queue.add(async () => {
      const res = await request(this.target(upstream, path), { method: 'GET', headers: { ...headers, host: upstream.url.host }, dispatcher: this.agent })
      const chunks: Buffer[] = []
      for await (const chunk of res.body) chunks.push(chunk as Buffer)
      this.noteRateLimit(upstream, res.headers)
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }
    }) as UpstreamAnswer
  }

  /** Anything but GET/HEAD: streamed through, nothing stored. */
  private async pass (req: IncomingMessage, res: ServerResponse, upstream: ApiUpstream, path: string, sidecarBase: string): Promise<void> {
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    const up = await request(this.target(upstream, path), {
      method: req.method as Dispatcher.HttpMethod,
      headers: { ...endToEnd(req.headers, ['host', 'accept-encoding']), host: upstream.url.host },
      body: hasBody ? req : null,
      dispatcher: this.agent
    })
    this.noteRateLimit(upstream, up.headers)
    res.writeHead(up.statusCode, { ...this.clientHeaders(endToEnd(up.headers), upstream, sidecarBase), 'x-cache': 'PASS', 'x-cache-source': upstream.name })
    await pipeline(up.body, res)
  }

  private send (req: IncomingMessage, res: ServerResponse, answer: Answer, upstream: ApiUpstream, sidecarBase: string): void {
    const headers: Record<string, string | number> = {
      ...this.clientHeaders(answer.headers, upstream, sidecarBase),
      'x-cache': answer.cache,
      'x-cache-source': answer.cache === 'HIT' ? 'local' : upstream.name
    }
    const etag = answer.headers.etag
    if (answer.status === 200 && etag !== undefined && req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    headers['content-length'] = answer.body.byteLength
    res.writeHead(answer.status, headers)
    res.end(req.method === 'HEAD' ? undefined : answer.body)
    if (req.method !== 'HEAD') this.init.stats.inc('bytes_served', answer.body.byteLength)
  }

  private clientHeaders (headers: HeaderMap, upstream: ApiUpstream, sidecarBase: string): HeaderMap {
    const out = { ...headers }
    delete out['content-length']
    for (const name of ['link', 'location', 'content-location']) {
      const value = out[name]
      if (value !== undefined) out[name] = rewriteUpstreamUrls(value, upstream.url, sidecarBase)
    }
    return out
  }

  private target (upstream: ApiUpstream, path: string): string {
    return `${upstream.url.href.replace(/\/+$/, '')}${path}`
  }

  private noteRateLimit (upstream: ApiUpstream, headers: Record<string, string | string[] | undefined>): void {
    const remaining = headers['x-ratelimit-remaining']
    if (typeof remaining === 'string' && /^\d+$/.test(remaining)) this.init.stats.setApiRateLimit(upstream.name, Number(remaining))
  }
}

interface UpstreamAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}
