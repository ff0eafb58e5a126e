import type { AbortOptions } from '@libp2p/interface'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import { DigestVerifier, type Digest } from '../oci/digest.js'
import { TtlSet } from '../clock/ttl-set.js'
import { parseRegistryPath, type RegistryRoute } from '../registry/path.js'
import type { RegistryRoutes } from '../registry/routes.js'
import { upstreamRepository } from '../registry/upstreams.js'
import { clientLeft } from '../http/client-left.js'
import { type RegistryClient } from '../upstream/registry-client.js'
import { discard } from '../io/bounded-body.js'
import type { UpstreamResponse } from '../upstream/registry-upstream.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import type { Authority } from './destination.js'
import { pickFields } from './header-fields.js'
import type { InterceptRoute } from './proxy-server.js'
import type { ProxyUpstreams } from './proxy-upstreams.js'
import { CONFIRMED_ACCESS_MS, REFUSED_REPOSITORY_MS } from './constants.js'
import type { StoreReader, StoreWriter } from '../store/roles.js'
import { storeTee } from './store-tee.js'
import { createHash } from 'node:crypto'
import { cacheDateHeader } from '../http/cache-date.js'

export interface RegistryInterceptInit {
  upstreams: ProxyUpstreams
  /** The mirror's pull API: digest keys, single-flight, peers, serve-stale. */
  registry: Pick<RegistryRoutes, 'serve'>
  /**
   * Content read with a client's own credentials (CACHE_DIR/private): a store of its own, never
   * announced, served only to a credential the registry confirmed. Undefined: relayed uncached.
   */
  privateStore?: (Pick<StoreReader, 'openRead'> & Pick<StoreWriter, 'createWriter' | 'commit'>) | undefined
  /** How long a repository the sidecar's access was refused is relayed without trying again (ms). */
  refusedMs?: number
  /** How long a credential's confirmed access to a digest is trusted (ms). */
  confirmedMs?: number
  log: Logger
}

/** Request fields a relayed pull sends on as the client sent them. */
const RELAYED_REQUEST = [
  'accept',
  'accept-encoding',
  'authorization',
  'if-none-match',
  'if-modified-since',
  'if-range',
  'range',
  'user-agent'
]
/** Answer fields a relayed pull returns (what a registry client reads; never cookies). */
const RELAYED_RESPONSE = [
  'content-type',
  'content-length',
  'content-range',
  'content-encoding',
  'accept-ranges',
  'docker-content-digest',
  'docker-distribution-api-version',
  'etag',
  'last-modified',
  'link',
  'www-authenticate',
  'retry-after',
  'ratelimit-limit',
  'ratelimit-remaining',
  'oci-filters-applied'
]

/**
 * The pull API of an intercepted registry (issue 24, points 3 and 4), as the mirror serves it:
 * a `GET`/`HEAD` of a manifest, blob, tag list or referrers goes to RegistryRoutes with that
 * registry's client (the fleet's credential or anonymous access), so content is keyed by
 * digest, fetched once swarm-wide, from peers first, verified, and served stale on 429/5xx.
 *
 * What the sidecar's own access can't read (401/403/404: a private repository) is relayed with
 * the client's own Authorization; its blobs and manifests by digest are kept in the private
 * store, never announced, and served from there only to a credential the registry confirms, so
 * private bytes only ever reach a client the registry itself let read them. Such a repository
 * is relayed straight away for REFUSED_REPOSITORY_MS. The ping `/v2/` is relayed (answered here
 * while the registry is unreachable); token endpoints and pushes pass through untouched, so a
 * client sees the registry's own auth challenges.
 */
export class RegistryIntercept implements InterceptRoute {
  /** `<upstream>/<repo>` the sidecar's access was refused on lately. */
  private readonly refused: TtlSet

  /** `<credential id> <upstream>/<repo>@<digest>` the registry confirmed with an authorized HEAD lately. */
  private readonly confirmed: TtlSet

  constructor (private readonly init: RegistryInterceptInit) {
    this.refused = new TtlSet(init.refusedMs ?? REFUSED_REPOSITORY_MS)
    this.confirmed = new TtlSet(init.confirmedMs ?? CONFIRMED_ACCESS_MS)
  }

  async handle (target: Authority, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false
    const url = new URL(req.url ?? '/', `https://${target.host}`)
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      const client = this.init.upstreams.for(target)
      if (client === undefined) return false
      await this.ping(client, target, req, res)
      return true
    }
    const route = pullRoute(url.pathname)
    if (route === undefined) return false
    const client = this.init.upstreams.for(target)
    if (client === undefined) return false
    const key = `${client.name}/${upstreamRepository(client, route.name)}`
    if (this.refused.has(key)) {
      await this.relay(client, target, route, req, res)
      return true
    }
    await this.init.registry.serve(req, res, url, () => client, async err => {
      // A 404 is not remembered: a tag or blob that does not exist says nothing of the repository.
      if (err.status !== 404) this.refused.add(key)
      this.init.log.debug(
        { upstream: client.name, repo: route.name, status: err.status },
        "the sidecar's access was refused: relayed with the client's credentials"
      )
      await this.relay(client, target, route, req, res)
    })
    return true
  }

  /**
   * The API version check `GET /v2/` (OCI distribution: "end-1"): the registry's own answer, with
   * its auth challenge; when it can't be reached (connection, 5xx, 429), the mirror's `200 {}`,
   * so a client goes on to the content the cache holds instead of failing at the check.
   */
  private async ping (client: RegistryClient, target: Authority, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET'
    let up: UpstreamResponse | undefined
    try {
      up = await client.relay(method, req.url ?? '/v2/', pickFields(req.headers, RELAYED_REQUEST), { signal: clientLeft(res) })
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError)) throw err
    }
    if (up !== undefined && up.status < 500 && up.status !== 429) {
      res.writeHead(up.status, { ...pickFields(up.headers, RELAYED_RESPONSE), 'x-cache': 'MISS', 'x-cache-source': target.host })
      if (method === 'HEAD') {
        discard(up.body)
        res.end()
        return
      }
      await pipeline(up.body, res)
      return
    }
    if (up !== undefined) discard(up.body)
    this.init.log.info(
      { host: target.host, status: up?.status },
      'registry unreachable: its API check answered here, so clients go on to the cache'
    )
    res.writeHead(200, {
      'docker-distribution-api-version': 'registry/2.0',
      'content-type': 'application/json',
      'content-length': 2,
      'x-cache': 'HIT',
      'x-cache-source': 'local'
    })
    res.end(method === 'HEAD' ? undefined : '{}')
  }

  /**
   * Sends the request on with the client's own headers and streams the registry's answer back,
   * redirects followed here. A whole blob or manifest by digest is verified as it passes: on a
   * mismatch the answer is cut, so a client never gets a complete wrong body. With a private
   * store, such a GET with credentials is kept there, and served from there to any credential
   * the registry confirms (one authorized HEAD per credential and digest, remembered for
   * CONFIRMED_ACCESS_MS); a credential it does not confirm gets the registry's own answer.
   */
  private async relay (
    client: RegistryClient,
    target: Authority,
    route: Exclude<RegistryRoute, { kind: 'base' }>,
    req: IncomingMessage,
    res: ServerResponse
  ): Promise<void> {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET'
    const signal = clientLeft(res)
    const headers = pickFields(req.headers, RELAYED_REQUEST)
    const digest = byDigest(route)
    const keep = method === 'GET' && digest !== undefined && headers.authorization !== undefined && headers.range === undefined
      ? this.init.privateStore
      : undefined
    if (keep !== undefined && digest !== undefined && await this.confirm(client, route, digest, headers, { signal })) {
      const local = await keep.openRead(digest)
      if (local !== undefined) {
        try {
          res.writeHead(200, {
            'content-type': local.record.mediaType ?? 'application/octet-stream',
            'content-length': local.record.size,
            'docker-content-digest': digest,
            etag: `"${digest}"`,
            'x-cache': 'HIT',
            'x-cache-source': 'local (private)',
            ...cacheDateHeader('HIT', local.record.createdAt)
          })
          await pipeline(local.stream(), res)
        } finally {
          await local.release()
        }
        return
      }
    }
    const up = await client.relay(method, req.url ?? '/', headers, { signal })
    res.writeHead(up.status, { ...pickFields(up.headers, RELAYED_RESPONSE), 'x-cache': 'MISS', 'x-cache-source': target.host })
    if (method === 'HEAD') {
      discard(up.body)
      res.end()
      return
    }
    const whole = wholeByDigest(route, up)
    if (whole === undefined) {
      await pipeline(up.body, res)
      return
    }
    const notKept = (err: Error): void => {
      this.init.log.warn({ host: target.host, digest: whole, err: err.message }, 'private content not kept')
    }
    const writer = keep === undefined ? undefined : await keep.createWriter(whole).catch((err: unknown) => {
      notKept(err as Error)
      return undefined
    })
    const tee = writer === undefined ? undefined : storeTee(writer, notKept)
    try {
      await pipeline(
        tee === undefined
          ? [up.body, verifying(whole, `${target.host} (relayed)`), res]
          : [up.body, verifying(whole, `${target.host} (relayed)`), tee.stream, res]
      )
    } catch (err) {
      await writer?.abort()
      throw err
    }
    if (keep === undefined || writer === undefined) return
    if (tee?.copied !== true) {
      await writer.abort()
      return
    }
    await keep.commit(
      writer,
      `${target.host} (private)`,
      route.kind === 'manifest' && up.headers['content-type'] !== undefined ? { mediaType: up.headers['content-type'] } : {}
    )
      .catch((err: unknown) => {
        notKept(err as Error)
      })
  }

  /**
   * Whether the registry lets the request's credentials read `digest` in its repository: one
   * authorized HEAD (the client's own headers), remembered per credential and digest.
   */
  private async confirm (
    client: RegistryClient,
    route: Exclude<RegistryRoute, { kind: 'base' }>,
    digest: Digest,
    headers: Record<string, string>,
    options: AbortOptions = {}
  ): Promise<boolean> {
    const credential = createHash('sha256').update('p2p-cache credential\0').update(headers.authorization ?? '').digest('hex').slice(0, 32)
    const key = `${credential} ${client.name}/${route.name}@${digest}`
    if (this.confirmed.has(key)) return true
    const kind = route.kind === 'manifest' ? 'manifests' : 'blobs'
    const head = await client.relay('HEAD', `/v2/${route.name}/${kind}/${digest}`, headers, options)
    discard(head.body)
    if (head.status < 200 || head.status > 299) return false
    this.confirmed.add(key)
    return true
  }
}

/** The pull-API route of `pathname`, or undefined for the ping, pushes' paths and anything malformed (passed through as it is). */
function pullRoute (pathname: string): Exclude<RegistryRoute, { kind: 'base' }> | undefined {
  let route: RegistryRoute | undefined
  try {
    route = parseRegistryPath(pathname)
  } catch {
    return undefined
  }
  return route === undefined || route.kind === 'base' ? undefined : route
}

/** The digest a request names: a blob's, or a manifest's asked by digest. */
function byDigest (route: Exclude<RegistryRoute, { kind: 'base' }>): Digest | undefined {
  if (route.kind === 'blob') return route.digest
  if (route.kind === 'manifest' && route.reference.startsWith('sha256:')) return route.reference as Digest
  return undefined
}

/** The digest a 200 answer's whole body must hash to (see byDigest). */
function wholeByDigest (route: Exclude<RegistryRoute, { kind: 'base' }>, up: UpstreamResponse): Digest | undefined {
  if (up.status !== 200 || up.headers['content-encoding'] !== undefined) return undefined
  return byDigest(route)
}

/**
 * Passes bytes on while hashing them, one chunk behind: the last one is sent only once the whole
 * body hashed to `digest`, so a wrong body is never completed (the answer is cut instead).
 */
function verifying (digest: Digest, source: string): Transform {
  const verifier = new DigestVerifier(digest)
  let held: Buffer | undefined
  return new Transform({
    transform (chunk: Buffer, _enc, done) {
      verifier.update(chunk)
      const out = held
      held = chunk
      done(null, out)
    },
    flush (done) {
      try {
        verifier.verify(source)
        done(null, held)
      } catch (err) {
        done(err as Error)
      }
    }
  })
}
