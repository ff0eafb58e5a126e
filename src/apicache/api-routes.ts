import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { pipeline } from 'node:stream/promises'
import CachePolicy from 'http-cache-semantics'
import PQueue from 'p-queue'
import { Agent, request, type Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { Upstream } from '../config/options.js'
import type { BlobStore } from '../store/blob-store.js'
import type { Stats } from '../metrics/stats.js'
import { sha256Digest, type Digest } from '../oci/digest.js'
import { clientLeft } from '../http/client-left.js'
import { endToEnd, rewriteUpstreamUrls, type HeaderMap } from './headers.js'
import type { ApiRecord, ApiRecords } from './records.js'
import type { Scopes } from './scope.js'
import { apiKey, normalizeAccept } from './record-key.js'
import { tryProviders, type PeerLookupInit } from '../resolver/peer-lookup.js'
import { fetchVerified, MemorySink } from '../resolver/peer-fetch.js'
import { SingleFlight } from '../resolver/single-flight.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'

export interface ApiRoutesInit {
  upstreams: Upstream[]
  store: BlobStore
  records: ApiRecords
  scopes: Scopes
  stats: Stats
  maxBody: number
  concurrency: number
  timeoutMs: number
  /** The swarm, when CACHE_ENABLE_P2P is on: a first request can revalidate a peer's copy. */
  peers?: PeerLookupInit | undefined
  log: Logger
}

type CacheStatus = 'HIT' | 'MISS' | 'REVALIDATED'

interface Answer {
  cache: CacheStatus
  status: number
  headers: HeaderMap
  body: Buffer
  /** The peer whose copy a 304 confirmed. */
  peer?: string
}

/** A stored response that can be revalidated: ours, another scope's, or a peer's. */
interface Candidate {
  status: number
  headers: HeaderMap
  body: Buffer
  peer?: string
}

interface ApiUpstream extends Upstream {
  queue: PQueue
  /** The URL without a trailing slash: `<base><path>` is the target. */
  base: string
}

interface HotEntry {
  record: ApiRecord
  body: Buffer
  /** The record's policy, parsed once: a hit then costs no JSON-to-policy rebuild. */
  policy: CachePolicy
}

/** Bound of the in-memory copy of recently stored responses. */
const HOT_MAX_BYTES = 32 * 1024 * 1024
const HOT_MAX_ENTRIES = 4096

/** Where an API request goes, and the prefix under which the client reached it. */
interface Route {
  upstream: ApiUpstream
  /** Path and query string at the upstream. */
  path: string
  /** `<scheme>://<host><prefix>` as the client used it: upstream URLs in answers become this. */
  sidecarBase: string
}

/**
 * The upstream that GitHub Enterprise Server's URL layout (`/api/v3/<path>`, `/api/graphql`)
 * stands for. Clients that only know github.com or a GHES host (gh with GH_HOST) can then use
 * the sidecar as that host.
 */
const ENTERPRISE_UPSTREAM = 'github'

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
  private readonly inflight = new SingleFlight<string, Promise<Answer>>()
  /** Recently stored records with their bodies: a hit needs no index read or file open. */
  private readonly hot = new Map<string, HotEntry>()
  private hotBytes = 0
  private readonly agent: Dispatcher

  constructor (private readonly init: ApiRoutesInit) {
    this.byName = new Map(init.upstreams.map(u => [u.name, { ...u, queue: new PQueue({ concurrency: init.concurrency }), base: u.url.href.replace(/\/+$/, '') }]))
    this.agent = new Agent({ headersTimeout: init.timeoutMs, bodyTimeout: init.timeoutMs, connect: { timeout: init.timeoutMs } })
  }

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const route = this.route(req, url)
    if (route === undefined) return false
    const { upstream, path, sidecarBase } = route
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        await this.pass(req, res, upstream, path, sidecarBase)
        return true
      }
      const headers = endToEnd(req.headers, NOT_FORWARDED)
      const scope = this.init.scopes.of(req.headers.authorization)
      const resource = `${upstream.name} ${path}`
      const key = `${resource}\0${scope}\0${headers.accept ?? ''}`
      // The request upstream stops when every client that shares it has left.
      const share = this.inflight.join(key, signal => {
        const pending = this.resolve(upstream, path, resource, scope, headers, signal)
        return { value: pending, done: pending }
      }, clientLeft(res))
      let answer: Answer
      try {
        answer = await share.value
      } finally {
        share.release()
      }
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

  /**
   * `/<name>/<path>` for any upstream, and the GitHub Enterprise layout for the one named
   * `github`. Anything else (including other `/api/...` paths) is not ours: it ends as a 404.
   */
  private route (req: IncomingMessage, url: URL): Route | undefined {
    const origin = `${clientScheme(req)}://${req.headers.host ?? '127.0.0.1'}`
    const enterprise = enterprisePath(url.pathname)
    if (enterprise !== undefined) {
      const upstream = this.byName.get(ENTERPRISE_UPSTREAM)
      // Rewritten links stay in the layout the client uses: gh follows `Link: rel="next"` as
      // given. (An upstream `/graphql` URL becomes `/api/v3/graphql`, which also lands here.)
      return upstream === undefined ? undefined : { upstream, path: `${enterprise}${url.search}`, sidecarBase: `${origin}/api/v3` }
    }
    const m = /^\/([^/]+)(\/.*)?$/.exec(url.pathname)
    const upstream = m === null ? undefined : this.byName.get(m[1] ?? '')
    if (upstream === undefined) return undefined
    return { upstream, path: `${m?.[2] ?? '/'}${url.search}`, sidecarBase: `${origin}/${upstream.name}` }
  }

  async close (): Promise<void> {
    await this.agent.close()
  }

  private async resolve (upstream: ApiUpstream, path: string, resource: string, scope: string, headers: HeaderMap, signal: AbortSignal): Promise<Answer> {
    const { records } = this.init
    // The policy (which is stored) sees the scope in place of the credential: `Vary:
    // Authorization` still works within a scope, and no token ever reaches the disk.
    const policyHeaders: HeaderMap = { ...headers, host: upstream.url.host }
    if (policyHeaders.authorization !== undefined) policyHeaders.authorization = scope
    const policyRequest = { url: path, method: 'GET', headers: policyHeaders }
    const shared = scope === 'anon'
    const hot = this.hot.get(`${resource}\0${scope}`)
    const own = hot?.record ?? await records.get(resource, scope)
    if (own !== undefined) {
      const policy = hot?.policy ?? CachePolicy.fromObject(own.policy)
      // Fresh and shareable without asking: anonymous entries, or ones the server marked public.
      if ((shared || /\bpublic\b/.test(own.headers['cache-control'] ?? '')) && policy.satisfiesWithoutRevalidation(policyRequest)) {
        const body = hot?.body ?? await this.readBody(own.body)
        if (body !== undefined) return { cache: 'HIT', status: own.status, headers: policy.responseHeaders() as HeaderMap, body }
      }
    }
    // A stored copy (ours, else another scope's, else a peer's) whose validator the requester
    // presents with its own credentials: a 304 proves this requester may have those exact bytes.
    const candidate = await this.candidate(own !== undefined ? [own] : await records.all(resource)) ??
      await this.fromPeers(resource, normalizeAccept(headers.accept), signal)
    if (candidate !== undefined) {
      const res = await this.fetch(upstream, path, { ...headers, ...validators(candidate.headers) }, signal)
      if (res.status !== 304) return await this.fresh(upstream, res, policyRequest, resource, scope)
      // RFC 9111 4.3.4: the 304's headers update the stored ones.
      const merged = { ...candidate.headers, ...endToEnd(res.headers, ['content-length']) }
      await this.store(resource, scope, policyRequest, candidate.status, merged, candidate.body, shared)
      this.init.stats.inc('revalidations_304')
      return { cache: 'REVALIDATED', status: candidate.status, headers: merged, body: candidate.body, ...(candidate.peer !== undefined ? { peer: candidate.peer } : {}) }
    }
    return await this.fresh(upstream, await this.fetch(upstream, path, headers, signal), policyRequest, resource, scope)
  }

  /** The first stored record with a validator whose body is still in the store. */
  private async candidate (records: ApiRecord[]): Promise<Candidate | undefined> {
    for (const record of records) {
      if (validators(record.headers) === undefined) continue
      const body = await this.readBody(record.body)
      if (body !== undefined) return { status: record.status, headers: record.headers, body }
    }
    return undefined
  }

  /** A peer's stored response for this request (no credential in the key), body verified. */
  private async fromPeers (resource: string, accept: string, signal: AbortSignal): Promise<Candidate | undefined> {
    const peers = this.init.peers
    if (peers === undefined) return undefined
    const key = apiKey(resource, accept)
    return await tryProviders(peers, key, { signal, budgetMs: peers.lookupTimeoutMs + 2 * peers.idleMs }, async (peer, attempt) => {
      let sink: MemorySink | undefined
      const blob = await fetchVerified(peers, peer, {
        request: { key },
        signal: attempt,
        maxSize: this.init.maxBody,
        open: answer => {
          if (answer.api === undefined) throw new PeerFetchError(answer.peer, 'refused', 'answered an API key without a record')
          if (validators(answer.api.headers) === undefined) throw new PeerFetchError(answer.peer, 'refused', 'a record without a validator')
          sink = new MemorySink(answer.api.body)
          return sink
        }
      })
      if (blob.api === undefined || sink === undefined) throw new PeerFetchError(blob.peer, 'protocol', 'lost its API record')
      return { status: blob.api.status, headers: blob.api.headers, body: sink.body, peer: blob.peer }
    })
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
    if (await this.init.store.stat(digest) === undefined) await this.init.store.put(digest, body, 'api upstream')
    const accept = normalizeAccept(request.headers.accept as string | undefined)
    const record: ApiRecord = { policy: policy.toObject(), status, headers, body: digest, size: body.byteLength, scope, accept, storedAt: Date.now() }
    await this.init.records.put(resource, record)
    this.remember(`${resource}\0${scope}`, { record, body, policy })
    this.init.peers?.swarm.announce(apiKey(resource, accept))
  }

  /** A body left the blob store (eviction, DELETE /api/cache): forget every hot entry. */
  forgetBodies (): void {
    this.hot.clear()
    this.hotBytes = 0
  }

  private remember (key: string, entry: HotEntry): void {
    if (entry.body.byteLength > HOT_MAX_BYTES / 16) return
    const previous = this.hot.get(key)
    if (previous !== undefined) this.hotBytes -= previous.body.byteLength
    this.hot.delete(key)
    this.hot.set(key, entry)
    this.hotBytes += entry.body.byteLength
    // Oldest first out (Map keeps insertion order; a store re-inserts).
    for (const [k, v] of this.hot) {
      if (this.hotBytes <= HOT_MAX_BYTES && this.hot.size <= HOT_MAX_ENTRIES) break
      this.hot.delete(k)
      this.hotBytes -= v.body.byteLength
    }
  }

  private async readBody (digest: Digest): Promise<Buffer | undefined> {
    const local = await this.init.store.openRead(digest)
    if (local === undefined) return undefined
    try {
      return await local.read()
    } finally {
      await local.release()
    }
  }

  private async fetch (upstream: ApiUpstream, path: string, headers: HeaderMap, signal: AbortSignal): Promise<UpstreamAnswer> {
    return await upstream.queue.add(async () => {
      const res = await request(`${upstream.base}${path}`, { method: 'GET', headers: { ...headers, host: upstream.url.host }, dispatcher: this.agent, signal })
      const chunks: Buffer[] = []
      for await (const chunk of res.body) chunks.push(chunk as Buffer)
      this.noteRateLimit(upstream, res.headers)
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }
    }, { signal }) as UpstreamAnswer
  }

  /** Anything but GET/HEAD: streamed through, nothing stored. */
  private async pass (req: IncomingMessage, res: ServerResponse, upstream: ApiUpstream, path: string, sidecarBase: string): Promise<void> {
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    const up = await request(`${upstream.base}${path}`, {
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
      'x-cache-source': answer.cache === 'HIT' ? 'local' : answer.peer ?? upstream.name
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
      if (value !== undefined) out[name] = rewriteUpstreamUrls(value, upstream.base, sidecarBase)
    }
    return out
  }


  private noteRateLimit (upstream: ApiUpstream, headers: Record<string, string | string[] | undefined>): void {
    const remaining = headers['x-ratelimit-remaining']
    if (typeof remaining === 'string' && /^\d+$/.test(remaining)) this.init.stats.setApiRateLimit(upstream.name, Number(remaining))
  }
}

/**
 * The upstream path of a GitHub Enterprise Server URL: `/api/v3/<path>` is REST `/<path>`,
 * `/api/graphql` is `/graphql` (api.github.com has both at its root). Undefined: not that layout.
 */
function enterprisePath (pathname: string): string | undefined {
  if (pathname === '/api/graphql') return '/graphql'
  if (pathname === '/api/v3') return '/'
  if (pathname.startsWith('/api/v3/')) return pathname.slice('/api/v3'.length)
  return undefined
}

/** How the client reached us: links we hand back must use the same scheme (gh only speaks HTTPS). */
function clientScheme (req: IncomingMessage): 'http' | 'https' {
  return (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http'
}

/** The conditional headers a stored response allows (ETag first), or none: then it can't be revalidated. */
function validators (headers: HeaderMap): HeaderMap | undefined {
  if (headers.etag !== undefined) return { 'if-none-match': headers.etag }
  if (headers['last-modified'] !== undefined) return { 'if-modified-since': headers['last-modified'] }
  return undefined
}

interface UpstreamAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}
