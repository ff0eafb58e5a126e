import type { Logger } from 'pino'
import { DigestMismatchError, isDigest, sha256Digest, type Digest } from '../oci/digest.js'
import { acceptClass, accepts, DEFAULT_MANIFEST_ACCEPT, INDEX_TYPES, MANIFEST_TYPES, MAX_MANIFEST_BYTES, upstreamAccept } from '../oci/media-types.js'
import { OciError } from '../oci/errors.js'
import type { BlobStore } from '../store/blob-store.js'
import { discard, type RegistryClient } from '../upstream/registry-client.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import type { Stats } from '../metrics/stats.js'
import type { CacheStatus } from './source.js'
import type { TagCache, TagRecord } from './tag-cache.js'
import { readAll, type PeerRef } from '../p2p/fetch/client.js'
import { tagKey } from '../oci/tag-key.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'

/** Overall bound on fetching one manifest from peers (each peer is also bounded by idleMs). */
const PEER_MANIFEST_BUDGET_MS = 30_000

export interface ResolvedTag {
  digest: Digest
  mediaType: string
  size: number | undefined
  /** Set when the upstream was unavailable and the last known resolution was used. */
  staleSince?: number
  /** The peer that resolved it, when this node had no resolution of its own. */
  peer?: string
}

export interface Manifest {
  digest: Digest
  mediaType: string
  body: Buffer
  cache: CacheStatus
  origin: string
}

export interface ManifestResolverInit {
  store: BlobStore
  tags: TagCache
  stats: Stats
  log: Logger
  /** The swarm, when CACHE_ENABLE_P2P is on: manifests by digest come from peers first. */
  peers?: PeerLookupInit | undefined
}

/**
 * Tags are resolved by the upstream with HEAD (Docker Hub does not count HEADs against the pull
 * limit); the manifest is then fetched by digest, verified, and kept in the blob store.
 */
export class ManifestResolver {
  private readonly fetches = new Map<Digest, Promise<Manifest>>()

  constructor (private readonly init: ManifestResolverInit) {}

  async resolveTag (client: RegistryClient, repo: string, tag: string, accept: string[]): Promise<ResolvedTag> {
    const klass = acceptClass(accept)
    const headers = { accept: upstreamAccept(accept) }
    try {
      const res = await client.sendOk('HEAD', repo, `/v2/${repo}/manifests/${tag}`, headers)
      discard(res.body)
      let digest = res.headers['docker-content-digest']
      let mediaType = res.headers['content-type'] ?? ''
      const length = res.headers['content-length']
      let size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined
      if (digest === undefined || !isDigest(digest)) {
        // Some registries omit the digest on HEAD: fetch the manifest and hash it ourselves.
        const full = await this.download(client, repo, tag, headers.accept)
        ;({ digest, mediaType } = full)
        size = full.body.byteLength
      }
      const resolved: ResolvedTag = { digest: digest as Digest, mediaType: mediaType.split(';')[0]?.trim() ?? '', size }
      const record = { ...resolved, resolvedAt: Date.now() }
      // A tag that is a single manifest (no index) is the answer for either class of client.
      const classes = INDEX_TYPES.includes(resolved.mediaType) ? [klass] : ['index', 'single']
      for (const c of classes) {
        await this.init.tags.set(client.name, repo, tag, c, record)
        this.init.peers?.swarm.announce(tagKey(client.name, repo, tag, c))
      }
      return resolved
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError)) throw err
      const own: (TagRecord & { peer?: string }) | undefined = await this.init.tags.get(client.name, repo, tag, klass)
      const last = own ?? await this.tagFromPeers(client.name, repo, tag, klass)
      if (last === undefined || !accepts(accept, last.mediaType)) throw err
      this.init.stats.inc('stale_tags_served')
      this.init.log.warn({ upstream: client.name, repo, tag, digest: last.digest, resolvedAt: new Date(last.resolvedAt).toISOString(), peer: last.peer, reason: err.message },
        'upstream unavailable; serving the last known digest for this tag')
      return { digest: last.digest, mediaType: last.mediaType, size: last.size, staleSince: last.resolvedAt, ...(last.peer !== undefined ? { peer: last.peer } : {}) }
    }
  }

  /**
   * What a peer last resolved the tag to (this node never did). Trusting a peer for the
   * tag → digest step is the price of pulling by tag during an outage; the content itself is
   * still verified by digest. The answer is kept, so the next pull needs no peer.
   */
  private async tagFromPeers (upstream: string, repo: string, tag: string, klass: 'index' | 'single'): Promise<(TagRecord & { peer: string }) | undefined> {
    const peers = this.init.peers
    if (peers === undefined) return undefined
    const key = tagKey(upstream, repo, tag, klass)
    const found = await tryProviders(peers, key, { budgetMs: peers.lookupTimeoutMs + peers.idleMs }, async (peer, signal) => {
      const answer = await peers.swarm.fetch(peer, { key, start: 0, end: 0 }, { signal, idleMs: peers.idleMs })
      answer.close()
      if (answer.tag === undefined) throw new PeerFetchError(answer.peer, 'protocol', `answered tag ${key} without a tag record`)
      return { ...answer.tag, peer: answer.peer }
    })
    if (found !== undefined) {
      const { peer, ...record } = found
      await this.init.tags.set(upstream, repo, tag, klass, record)
    }
    return found
  }

  async get (client: RegistryClient, repo: string, digest: Digest): Promise<Manifest> {
    const { store, stats, log } = this.init
    const local = await store.openRead(digest)
    if (local !== undefined) {
      try {
        // A record without a media type was stored through /blobs/: the upstream must confirm
        // that this digest is a manifest (and say its type) before we answer for it as one.
        const mediaType = local.record.mediaType
        if (mediaType !== undefined) {
          const body = await local.read()
          stats.inc('hits')
          log.info({ digest, size: local.record.size, cache: 'HIT' }, 'manifest hit')
          return { digest, mediaType, body, cache: 'HIT', origin: 'local' }
        }
      } finally {
        await local.release()
      }
    }
    stats.inc('misses')
    let pending = this.fetches.get(digest)
    if (pending === undefined) {
      pending = this.fetchAndStore(client, repo, digest).finally(() => this.fetches.delete(digest))
      this.fetches.set(digest, pending)
    }
    return await pending
  }

  private async fetchAndStore (client: RegistryClient, repo: string, digest: Digest): Promise<Manifest> {
    const { store, stats, log, peers } = this.init
    if (peers !== undefined) {
      const fromPeer = await tryProviders(peers, digest, { budgetMs: PEER_MANIFEST_BUDGET_MS }, async (peer, signal) => await this.fromPeer(peers, peer, digest, signal))
      if (fromPeer !== undefined) return fromPeer
    }
    const fetched = await this.download(client, repo, digest, DEFAULT_MANIFEST_ACCEPT)
    if (fetched.digest !== digest) {
      throw new DigestMismatchError(digest, fetched.digest, `upstream ${client.name}`)
    }
    await store.put(digest, fetched.body, `upstream ${client.name}`, { mediaType: fetched.mediaType })
    stats.inc('upstream_hits')
    stats.inc('bytes_from_upstream', fetched.body.byteLength)
    log.info({ digest, size: fetched.body.byteLength, cache: 'MISS', upstream: client.name }, 'manifest stored')
    return { ...fetched, cache: 'MISS', origin: client.name }
  }

  /** A manifest from one provider: verified, typed (header, else its own mediaType field), stored. */
  private async fromPeer (peers: PeerLookupInit, peer: PeerRef, digest: Digest, signal: AbortSignal): Promise<Manifest> {
    const { store, stats, log } = this.init
    const blob = await peers.swarm.fetch(peer, { key: digest }, { signal, idleMs: peers.idleMs })
    if (blob.size > MAX_MANIFEST_BYTES) {
      const err = new PeerFetchError(blob.peer, 'too_large', `announced a ${blob.size} byte manifest`)
      blob.close(err)
      throw err
    }
    const body = await readAll(blob)
    stats.inc('bytes_from_peers', body.byteLength)
    const actual = sha256Digest(body)
    if (actual !== digest) {
      const mismatch = new DigestMismatchError(digest, actual, `peer ${blob.peer}`)
      stats.inc('errors')
      peers.swarm.deny(blob.peer, mismatch.message)
      throw new PeerFetchError(blob.peer, 'mismatch', mismatch.message)
    }
    // The digest covers the body, not the peer's header: its type is taken only if it is a
    // manifest type and agrees with the type the manifest declares (when it declares one).
    const declared = declaredMediaType(body)
    const stated = blob.mediaType !== undefined && MANIFEST_TYPES.includes(blob.mediaType) ? blob.mediaType : undefined
    const mediaType = declared ?? stated
    if (mediaType === undefined || (stated !== undefined && stated !== mediaType)) {
      throw new PeerFetchError(blob.peer, 'refused', `has ${digest} without a manifest media type it can vouch for (header ${blob.mediaType ?? 'none'}, body ${declared ?? 'none'})`)
    }
    await store.put(digest, body, `peer ${blob.peer}`, { mediaType })
    stats.inc('peer_hits')
    log.info({ digest, size: body.byteLength, cache: 'PEER', peer: blob.peer }, 'manifest stored')
    return { digest, mediaType, body, cache: 'PEER', origin: blob.peer }
  }

  private async download (client: RegistryClient, repo: string, reference: string, accept: string): Promise<{ digest: Digest, mediaType: string, body: Buffer }> {
    const res = await client.sendOk('GET', repo, `/v2/${repo}/manifests/${reference}`, { accept })
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).byteLength
      if (size > MAX_MANIFEST_BYTES) {
        discard(res.body)
        throw new OciError(502, 'MANIFEST_INVALID', `upstream ${client.name} sent a manifest larger than ${MAX_MANIFEST_BYTES} bytes for ${repo}@${reference}`)
      }
      chunks.push(chunk as Buffer)
    }
    const body = Buffer.concat(chunks)
    const mediaType = (res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
    return { digest: sha256Digest(body), mediaType, body }
  }
}

/** The `mediaType` a manifest declares in its JSON (covered by the digest), if it is one we serve. */
function declaredMediaType (body: Buffer): string | undefined {
  try {
    const value = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType
    return typeof value === 'string' && MANIFEST_TYPES.includes(value) ? value : undefined
  } catch {
    return undefined
  }
}
