import type { AbortOptions } from '@libp2p/interface'
import assert from 'node:assert/strict'
import { ManifestResolver } from '../../../src/resolver/manifest-resolver.js'
import { TagCache } from '../../../src/resolver/tag-cache.js'
import { tagKey } from '../../../src/oci/tag-key.js'
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/media-types.js'
import { UpstreamStatusError, UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import { silentLog } from '../fakes/log.js'
import { FakeRegistryUpstream } from '../fakes/registry-upstream.js'
import type { UpstreamResponse } from '../../../src/upstream/registry-upstream.js'
import { peerInit, rig, type Rig } from './setup.js'

const REPO = 'library/alpine'
const OCI_ACCEPT = [OCI_MANIFEST, OCI_INDEX]

/** A registry (or proxy) that serves every manifest as application/octet-stream, whatever the Accept. */
class GenericTypeUpstream extends FakeRegistryUpstream {
  override async send (
    method: 'GET' | 'HEAD',
    repo: string,
    path: string,
    headers: Record<string, string>,
    options?: AbortOptions
  ): Promise<UpstreamResponse> {
    const manifest = path.includes('/manifests/')
    const res = await super.send(method, repo, path, manifest ? { ...headers, accept: '*/*' } : headers, options)
    if (manifest && res.status === 200) res.headers['content-type'] = 'application/octet-stream'
    return res
  }
}

describe('ManifestResolver: tags by HEAD, manifests by digest, the last resolution while the upstream is down', () => {
  let r: Rig
  let tags: TagCache
  let manifests: ManifestResolver
  afterEach(async () => {
    await r.dispose()
  })

  async function setup (opts: { p2p?: boolean, lingerMs?: number } = {}): Promise<void> {
    r = await rig(opts)
    tags = new TagCache(r.t.store.db)
    manifests = new ManifestResolver({
      tags,
      stats: r.stats,
      log: silentLog(),
      blobs: r.resolver,
      peers: opts.p2p === false ? undefined : peerInit(r.net, { stats: r.stats })
    })
  }

  it('resolves a tag with one HEAD (not counted against pull limits), remembers and announces it at once', async () => {
    await setup()
    const img = r.up.addImage(REPO, '3')
    const resolved = await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    assert.deepEqual(resolved, { digest: img.digest, mediaType: OCI_MANIFEST, size: img.manifest.byteLength })
    assert.deepEqual(r.up.requests.map(q => `${q.method} ${q.path}`), [`HEAD /v2/${REPO}/manifests/3`])
    // A single manifest is the answer for clients that take an index and for those that don't.
    for (const klass of ['index', 'single']) {
      assert.equal((await tags.get('docker.io', REPO, '3', klass))?.digest, img.digest)
      // Now, not at the node's next quiet moment: a peer needs it when the upstream goes down.
      assert.ok(r.net.announcedNow.includes(tagKey('docker.io', REPO, '3', klass)))
    }
  })

  it('an index is remembered only for the Accept class that asked', async () => {
    await setup()
    const index = r.up.addIndex(REPO, 'multi', [r.up.addImage(REPO, undefined)])
    const resolved = await manifests.resolveTag(r.up, REPO, 'multi', OCI_ACCEPT)
    assert.equal(resolved.digest, index.digest)
    assert.equal(resolved.mediaType, OCI_INDEX)
    assert.ok(await tags.get('docker.io', REPO, 'multi', 'index') !== undefined)
    assert.equal(await tags.get('docker.io', REPO, 'multi', 'single'), undefined)
  })

  it('a registry that omits the digest on HEAD: the manifest is fetched and hashed here', async () => {
    r = await rig()
    await r.up.close()
    r.up = new FakeRegistryUpstream({ digestHeader: false })
    tags = new TagCache(r.t.store.db)
    manifests = new ManifestResolver({ tags, stats: r.stats, log: silentLog(), blobs: r.resolver })
    const img = r.up.addImage(REPO, '3')
    const resolved = await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    assert.equal(resolved.digest, img.digest)
    assert.equal(resolved.size, img.manifest.byteLength)
    assert.equal(r.up.count('GET', `/v2/${REPO}/manifests/3`), 1)
  })

  it("a generic Content-Type says nothing: the media type is the manifest body's", async () => {
    await setup()
    await r.up.close()
    r.up = new GenericTypeUpstream()
    const body = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { digest: 'sha256:' + 'a'.repeat(64), size: 1 }, layers: [] })
    )
    const digest = r.up.addManifest(REPO, body, DOCKER_MANIFEST, 'generic')
    const resolved = await manifests.resolveTag(r.up, REPO, 'generic', [])
    assert.equal(resolved.digest, digest)
    assert.equal(resolved.mediaType, DOCKER_MANIFEST)
    const m = await manifests.get(r.up, REPO, digest)
    assert.equal(m.mediaType, DOCKER_MANIFEST)
    assert.equal(m.cache, 'HIT', 'fetched once, while resolving the tag')
  })

  it('the upstream down: the last resolution is served, flagged stale with its date', async () => {
    await setup()
    const img = r.up.addImage(REPO, '3')
    await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    r.up.fault(`/v2/${REPO}/manifests/3`, { kind: 'status', status: 503 })
    const stale = await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    assert.equal(stale.digest, img.digest)
    assert.equal(typeof stale.staleSince, 'number')
    assert.equal(stale.peer, undefined)
    assert.equal(r.stats.snapshot().stale_tags_served, 1)
  })

  it('the upstream down and no resolution here: a tag a peer resolved is used, flagged, kept and announced', async () => {
    await setup()
    const img = r.up.addImage(REPO, '3')
    const key = tagKey('docker.io', REPO, '3', 'index')
    const peer = (await r.net.addPeer('p')).holdTag(key, {
      digest: img.digest,
      mediaType: OCI_MANIFEST,
      size: img.manifest.byteLength,
      resolvedAt: 1_700_000_000_000
    })
    r.up.fault(`/v2/${REPO}/manifests/3`, { kind: 'connection', times: 2 })
    const resolved = await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    assert.deepEqual(resolved, {
      digest: img.digest,
      mediaType: OCI_MANIFEST,
      size: img.manifest.byteLength,
      staleSince: 1_700_000_000_000,
      peer: peer.name
    })
    assert.deepEqual(peer.requests, [{ key, start: 0, end: 0 }])
    // This node holds it too now, for the rest of the outage.
    assert.deepEqual(r.net.announcedNow, [key])
    // Kept: the next pull during the outage needs no peer.
    const again = await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    assert.equal(again.digest, img.digest)
    assert.equal(again.peer, undefined)
    assert.equal(peer.fetches, 1)
  })

  it("the upstream down and nobody knows the tag: the upstream's error is what the client gets", async () => {
    await setup()
    r.up.addImage(REPO, '3')
    r.up.fault(`/v2/${REPO}/manifests/3`, { kind: 'connection' })
    await assert.rejects(manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT), UpstreamUnavailableError)
  })

  it('a remembered resolution of a type the client does not accept is not served', async () => {
    await setup()
    const img = r.up.addImage(REPO, '3')
    const key = tagKey('docker.io', REPO, '3', 'single')
    await r.net.addPeer('p').then(p => p.holdTag(key, { digest: img.digest, mediaType: OCI_MANIFEST, resolvedAt: 1 }))
    r.up.fault(`/v2/${REPO}/manifests/3`, { kind: 'connection' })
    await assert.rejects(manifests.resolveTag(r.up, REPO, '3', [DOCKER_MANIFEST]), UpstreamUnavailableError)
  })

  it("the upstream's answer always decides: a 404 is not covered up by a remembered digest", async () => {
    await setup()
    r.up.addImage(REPO, '3')
    await manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT)
    r.up.untag(REPO, '3')
    await assert.rejects(
      manifests.resolveTag(r.up, REPO, '3', OCI_ACCEPT),
      (err: unknown) => err instanceof UpstreamStatusError && err.status === 404
    )
  })

  it('a manifest by digest is fetched once, verified, and kept with its media type', async () => {
    await setup({ p2p: false })
    const img = r.up.addImage(REPO, '3')
    const first = await manifests.get(r.up, REPO, img.digest)
    assert.ok(first.body.equals(img.manifest))
    assert.equal(first.mediaType, OCI_MANIFEST)
    assert.equal(first.cache, 'MISS')
    const second = await manifests.get(r.up, REPO, img.digest)
    assert.equal(second.cache, 'HIT')
    assert.equal(second.mediaType, OCI_MANIFEST)
    assert.equal(r.up.count('GET', `/v2/${REPO}/manifests/${img.digest}`), 1)
  })

  it('a manifest from a peer: its stated type is taken only when the body agrees', async () => {
    await setup()
    const img = r.up.addImage(REPO, '3')
    const honest = (await r.net.addPeer('honest')).holdBlob(img.digest, img.manifest, OCI_MANIFEST)
    const m = await manifests.get(r.up, REPO, img.digest)
    assert.equal(m.origin, honest.name)
    assert.equal(m.mediaType, OCI_MANIFEST)
    assert.equal(r.up.count('GET', `/v2/${REPO}/manifests/${img.digest}`), 0)
  })

  it('a peer that states a type the manifest contradicts is refused and the upstream asked', async () => {
    // As in production, the download outlives its cut response a while: the retry finds it.
    await setup({ lingerMs: 1000 })
    const img = r.up.addImage(REPO, '3')
    const wrong = (await r.net.addPeer('wrong')).holdBlob(img.digest, img.manifest, OCI_INDEX)
    // The response that followed the peer's bytes is cut before its last byte (its client retries).
    await manifests.get(r.up, REPO, img.digest).then(
      got => {
        assert.equal(got.mediaType, OCI_MANIFEST)
      },
      (err: Error) => {
        assert.match(err.message, /retry the request/)
      }
    )
    const m = await manifests.get(r.up, REPO, img.digest)
    assert.equal(m.mediaType, OCI_MANIFEST)
    assert.ok(m.body.equals(img.manifest))
    assert.equal(wrong.fetches, 1)
    assert.equal(r.net.isDenied(wrong.name), false, 'a wrong type is refused, not a lie about the bytes')
    assert.equal(r.up.count('GET', `/v2/${REPO}/manifests/${img.digest}`), 1)
  })
})
