import type { Logger } from 'pino'
import type { AbortOptions } from '@libp2p/interface'
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js'
import { acceptClass, accepts, INDEX_TYPES, MANIFEST_TYPES, manifestType, MAX_MANIFEST_BYTES, upstreamAccept } from '../oci/media-types.js'
import { OciError } from '../oci/errors.js'
import { discard, readBounded } from '../io/bounded-body.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import type { Stats } from '../metrics/stats.js'
import type { CacheStatus } from './source.js'
import type { TagCache, TagRecord } from './tag-cache.js'
import { tagKey } from '../oci/tag-key.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'
import type { BlobResolver } from './blob-resolver.js'
import { BUCKET_ORIGIN, type BucketTier } from '../bucket/bucket-tier.js'
import { UPSTREAM_TAG_KIND } from '../bucket/object-keys.js'
import { TAG_REWRITE_MS } from '../bucket/constants.js'
import { parseTagRecord } from './tag-cache.js'
import { contentLength, mediaTypeOf } from '../http/fields.js'

export interface ResolvedTag {
  digest: Digest
  mediaType: string
  size: number | undefined
  /** Set when the upstream was unavailable and the last known resolution was used. */
  staleSince?: number
  /** The peer that resolved it (or `s3`: the bucket had it), when this node had no resolution of its own. */
  peer?: string
}

export interface Manifest {
  digest: Digest
  mediaType: string
  body: Buffer
  cache: CacheStatus
  origin: string
  /** A HIT: when this node stored it (ms since the epoch). */
  storedAt?: number
}

export interface ManifestResolverInit {
  tags: TagCache
  stats: Stats
  log: Logger
  /** Manifests by digest are fetched (and single-flighted) as blobs with a media type. */
  blobs: BlobResolver
  /** The swarm, when CACHE_ENABLE_P2P is on: a tag a peer resolved, while the upstream is down. */
  peers?: PeerLookupInit | undefined
  /** The bucket (CACHE_S3_URL): resolutions are written to it, and read back while the upstream is down and no peer has one. */
  bucket?: BucketTier | undefined
}

/** Tags whose last write to the bucket this node remembers, at most (then it starts over). */
const MAX_TAGS_WRITTEN = 10_000

/**
 * Tags are resolved by the upstream with HEAD (Docker Hub does not count HEADs against the pull
 * limit); the manifest is then fetched by digest, verified, and kept in the blob store.
 */
export class ManifestResolver {
  /** Tag record name → the digest this node last wrote to the bucket for it, and when. */
  private readonly written = new Map<string, { digest: Digest, at: number }>()

  constructor (private readonly init: ManifestResolverInit) {}

  /**
   * The digest `tag` resolves to now (a HEAD upstream), or while the upstream is unavailable the
   * last one this node, a peer or the bucket knows (`staleSince` set).
   * @throws the upstream's errors when no past resolution is known; the signal's reason
   */
  async resolveTag (
    client: RegistryUpstream,
    repo: string,
    tag: string,
    accept: string[],
    options: AbortOptions = {}
  ): Promise<ResolvedTag> {
    const klass = acceptClass(accept)
    const headers = { accept: upstreamAccept(accept) }
    try {
      const res = await client.sendOk('HEAD', repo, `/v2/${repo}/manifests/${tag}`, headers, options)
      discard(res.body)
      let digest = res.headers['docker-content-digest']
      let mediaType = res.headers['content-type'] ?? ''
      let size = contentLength(res.headers['content-length'])
      if (digest === undefined || !isDigest(digest)) {
        // Some registries omit the digest on HEAD: fetch the manifest and hash it ourselves.
        const full = await this.download(client, repo, tag, headers.accept, options)
        ;({ digest, mediaType } = full)
        size = full.body.byteLength
      }
      mediaType = mediaTypeOf(mediaType)
      // A generic Content-Type (application/octet-stream) says nothing: the manifest's body does.
      if (!MANIFEST_TYPES.includes(mediaType)) mediaType = (await this.get(client, repo, digest as Digest, options)).mediaType
      const resolved: ResolvedTag = { digest: digest as Digest, mediaType, size }
      const record = { ...resolved, resolvedAt: Date.now() }
      // A tag that is a single manifest (no index) is the answer for either class of client.
      const classes = INDEX_TYPES.includes(resolved.mediaType) ? [klass] : ['index', 'single']
      for (const c of classes) {
        await this.init.tags.set(client.name, repo, tag, c, record)
        // At once, not when the node is next quiet: this key is what a peer needs during an
        // outage, and a node mid-pull can stay busy for the whole deferral (30 s).
        this.init.peers?.swarm.announce(tagKey(client.name, repo, tag, c), { now: true })
        this.toBucket(`${client.name}/${repo}:${tag}#${c}`, record)
      }
      return resolved
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError) || options.signal?.aborted === true) throw err
      const own: (TagRecord & { peer?: string }) | undefined = await this.init.tags.get(client.name, repo, tag, klass)
      const last = own ?? await this.tagFromPeers(client.name, repo, tag, klass) ?? await this.tagFromBucket(client.name, repo, tag, klass)
      if (last === undefined || !accepts(accept, last.mediaType)) throw err
      this.init.stats.inc('stale_tags_served')
      this.init.log.warn({
        upstream: client.name,
        repo,
        tag,
        digest: last.digest,
        resolvedAt: new Date(last.resolvedAt).toISOString(),
        peer: last.peer,
        reason: err.message
      }, 'upstream unavailable; serving the last known digest for this tag')
      return {
        digest: last.digest,
        mediaType: last.mediaType,
        size: last.size,
        staleSince: last.resolvedAt,
        ...(last.peer !== undefined ? { peer: last.peer } : {})
      }
    }
  }

  /**
   * What a peer last resolved the tag to (this node never did). Trusting a peer for the
   * tag → digest step is the price of pulling by tag during an outage; the content itself is
   * still verified by digest. The answer is kept, so the next pull needs no peer.
   */
  private async tagFromPeers (
    upstream: string,
    repo: string,
    tag: string,
    klass: 'index' | 'single'
  ): Promise<(TagRecord & { peer: string }) | undefined> {
    const peers = this.init.peers
    if (peers === undefined) return undefined
    const key = tagKey(upstream, repo, tag, klass)
    const found = await tryProviders(peers, key, { budgetMs: peers.lookupTimeoutMs + peers.idleMs }, async (peer, { signal }) => {
      const answer = await peers.swarm.fetch(peer, { key, start: 0, end: 0 }, { signal, idleMs: peers.idleMs })
      answer.close()
      if (answer.tag === undefined) throw new PeerFetchError(answer.peer, 'protocol', `answered tag ${key} without a tag record`)
      return { ...answer.tag, peer: answer.peer }
    })
    if (found !== undefined) {
      const { peer, ...record } = found
      await this.init.tags.set(upstream, repo, tag, klass, record)
      // One more holder of the record for the rest of the outage (the one asked may leave).
      peers.swarm.announce(key, { now: true })
    }
    return found
  }

  /**
   * Writes a resolution to the bucket (the fleet's stale fallback once it scaled to zero): when
   * this node has not written this digest for the tag within TAG_REWRITE_MS, and then only if
   * the bucket's object does not already name it (HEAD: so across the swarm a tag is written
   * about once per change, and again once a day so a lifecycle rule does not expire it).
   */
  private toBucket (name: string, record: TagRecord): void {
    const bucket = this.init.bucket
    if (bucket === undefined) return
    const now = Date.now()
    const last = this.written.get(name)
    if (last !== undefined && last.digest === record.digest && now - last.at < TAG_REWRITE_MS) return
    if (this.written.size >= MAX_TAGS_WRITTEN) this.written.clear()
    this.written.set(name, { digest: record.digest, at: now })
    bucket.writeRecord(UPSTREAM_TAG_KIND, name, record, record.resolvedAt, {
      metadata: { digest: record.digest },
      unlessSame: head =>
        head.metadata.digest === record.digest && head.lastModified !== undefined && now - head.lastModified.getTime() < TAG_REWRITE_MS
    })
  }

  /**
   * What the bucket says the tag last resolved to (no node of the fleet has it: it scaled to
   * zero). Trusted like a peer's answer for the tag → digest step; the content is verified by
   * digest. Kept, so the next pull needs no bucket read.
   */
  private async tagFromBucket (
    upstream: string,
    repo: string,
    tag: string,
    klass: 'index' | 'single'
  ): Promise<(TagRecord & { peer: string }) | undefined> {
    const found = await this.init.bucket?.readRecord(UPSTREAM_TAG_KIND, `${upstream}/${repo}:${tag}#${klass}`)
    const record = found === undefined ? undefined : parseTagRecord(found.value)
    if (record === undefined) return undefined
    await this.init.tags.set(upstream, repo, tag, klass, record)
    return { ...record, peer: BUCKET_ORIGIN }
  }

  /**
   * The manifest `digest`, verified: from the store, else through the blob resolver's download
   * (local and swarm-wide single-flight, peers, upstream), kept with its media type.
   * Throws OciError MANIFEST_INVALID when it is larger than MAX_MANIFEST_BYTES.
   */
  async get (client: RegistryUpstream, repo: string, digest: Digest, options: AbortOptions = {}): Promise<Manifest> {
    const source = await this.init.blobs.open(client, repo, digest, {
      kind: 'manifest',
      ...(options.signal !== undefined ? { signal: options.signal } : {})
    })
    try {
      if (source.size !== undefined && source.size > MAX_MANIFEST_BYTES) {
        throw new OciError(
          502,
          'MANIFEST_INVALID',
          `${source.origin} has a ${source.size} byte manifest for ${repo}@${digest}, above ${MAX_MANIFEST_BYTES} bytes`
        )
      }
      const chunks: Buffer[] = []
      let bytes = 0
      for await (const chunk of source.stream(0, undefined)) {
        bytes += (chunk as Buffer).byteLength
        // A source that stated no size is held to the bound as the bytes come.
        if (bytes > MAX_MANIFEST_BYTES) {
          throw new OciError(
            502,
            'MANIFEST_INVALID',
            `${source.origin} sent more than ${MAX_MANIFEST_BYTES} bytes of manifest for ${repo}@${digest}`
          )
        }
        chunks.push(chunk as Buffer)
      }
      const body = Buffer.concat(chunks)
      return {
        digest,
        mediaType: manifestType(source.mediaType, body) ?? '',
        body,
        cache: source.cache,
        origin: source.origin,
        ...(source.storedAt !== undefined ? { storedAt: source.storedAt } : {})
      }
    } finally {
      await source.release()
    }
  }

  private async download (
    client: RegistryUpstream,
    repo: string,
    reference: string,
    accept: string,
    options: AbortOptions
  ): Promise<{ digest: Digest, mediaType: string, body: Buffer }> {
    const res = await client.sendOk('GET', repo, `/v2/${repo}/manifests/${reference}`, { accept }, options)
    const body = await readBounded(res.body, MAX_MANIFEST_BYTES)
    if (body === undefined) {
      throw new OciError(
        502,
        'MANIFEST_INVALID',
        `upstream ${client.name} sent a manifest larger than ${MAX_MANIFEST_BYTES} bytes for ${repo}@${reference}`
      )
    }
    const mediaType = mediaTypeOf(res.headers['content-type'])
    return { digest: sha256Digest(body), mediaType, body }
  }
}
