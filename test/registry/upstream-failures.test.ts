import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout, pullToLayout, layoutBlobDigests } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { startMisbehavingRegistry, type MisbehavingRegistry } from '../fixtures/misbehaving-registry.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'

/**
 * What real upstreams do that distribution doesn't: rate limits (Docker Hub's 429 and its
 * `ratelimit-*` headers), connections that drop mid-blob. A proxy in front of the real
 * registry misbehaves on request; the clients are fetch (exact statuses) and skopeo.
 */
describe('registry mirror: upstream rate limits and dropped connections', function () {
  this.timeout(120_000)
  let work: string
  let registry: Registry
  let upstream: MisbehavingRegistry
  let sidecar: SidecarProcess
  let image: ImageDescription

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-upfail-'))
    registry = await startRegistry()
    image = await buildImage(join(work, 'img'), { tag: 'v1', layers: 2, layerSize: 2 * 1024 * 1024 })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'library/app')
    upstream = await startMisbehavingRegistry(registry.url)
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `docker.io=${upstream.url}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
    upstream.set({ dockerHubRateLimit: undefined, tooManyRequests: undefined, dropAfterBytes: undefined, genericManifestType: false })
  })

  after(async () => {
    await stopAll([sidecar])
    await upstream?.close()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  const layer = (i: number): { digest: string, size: number } => {
    const l = image.layers[i]
    assert.ok(l)
    return l
  }

  it("an upstream 429 for content not in the cache is a 429 TOOMANYREQUESTS with the upstream's Retry-After, not a 502", async () => {
    const { digest } = layer(0)
    upstream.set({ tooManyRequests: { pathIncludes: digest, retryAfterS: 42 } })
    const res = await fetch(`${sidecar.url}/v2/library/app/blobs/${digest}`, { signal: AbortSignal.timeout(30_000) })
    assert.equal(res.status, 429)
    assert.equal(res.headers.get('retry-after'), '42')
    const body = await res.json() as { errors: Array<{ code: string, message: string }> }
    assert.equal(body.errors[0]?.code, 'TOOMANYREQUESTS')
    assert.match(
      body.errors[0]?.message ?? '',
      /^upstream docker\.io is rate limiting this host \(429\) and the content is not in the cache or on a peer; try again in 42 s, or give the sidecar an account with a higher limit \(CACHE_REGISTRY_AUTH\)$/
    )
  })

  it("Docker Hub's ratelimit-limit / ratelimit-remaining are reported per upstream in stats and metrics", async () => {
    upstream.set({ dockerHubRateLimit: { limit: 100, remaining: 77, windowS: 21600 } })
    const res = await fetch(`${sidecar.url}/v2/library/app/manifests/v1`, {
      headers: { accept: image.mediaType },
      signal: AbortSignal.timeout(30_000)
    })
    assert.equal(res.status, 200)
    await res.arrayBuffer()
    const stats = await sidecar.stats() as unknown as { registry_ratelimit: Record<string, unknown> }
    // A tag pull is a HEAD to the upstream (free on Docker Hub), then the manifest by digest: one GET counted.
    assert.deepEqual(stats.registry_ratelimit['docker.io'], { remaining: 76, limit: 100, window_s: 21600 })
    const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
    assert.match(metrics, /^p2p_cache_registry_ratelimit_remaining\{upstream="docker\.io"\} 76$/m)
    assert.match(metrics, /^p2p_cache_registry_ratelimit_limit\{upstream="docker\.io"\} 100$/m)
  })

  it("an upstream that drops the connection mid-blob is resumed with a Range: the client's transfer completes, one piece", async () => {
    const { digest, size } = layer(1)
    upstream.set({ dropAfterBytes: { pathIncludes: digest, bytes: 700_000, times: 1 } })
    const res = await fetch(`${sidecar.url}/v2/library/app/blobs/${digest}`, { signal: AbortSignal.timeout(60_000) })
    assert.equal(res.status, 200)
    const bytes = Buffer.from(await res.arrayBuffer())
    assert.equal(bytes.byteLength, size)
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest)
    const gets = upstream.requests().filter(r => r.method === 'GET' && r.path.includes(digest))
    assert.deepEqual(gets.map(r => r.range), [undefined, 'bytes=700000-'], JSON.stringify(gets))
  })

  it('skopeo pulls the whole image through connection drops on its layers', async () => {
    // A fresh sidecar: nothing cached, every layer comes from the upstream, cut once each.
    const fresh = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `docker.io=${upstream.url}` })
    try {
      // The first 4 blob GETs (the config, each layer, a resume) are cut after 300 kB.
      upstream.set({ dropAfterBytes: { pathIncludes: '/blobs/', bytes: 300_000, times: 4 } })
      const from = upstream.requests().length
      const out = await mkdtemp(join(work, 'pull-'))
      await pullToLayout(fresh.host, 'library/app', 'v1', out)
      const got = await layoutBlobDigests(out)
      for (const l of image.layers) assert.ok(got.includes(l.digest), `${l.digest} pulled`)
      const resumed = upstream.requests().slice(from).filter(r => r.range !== undefined)
      assert.ok(resumed.length >= 2, `the sidecar resumed each cut layer: ${JSON.stringify(upstream.requests().slice(from))}`)
    } finally {
      await fresh.destroy()
    }
  })

  it('a manifest the upstream serves as application/octet-stream is served with the media type its body declares, by tag (GET, HEAD) and digest', async () => {
    const fresh = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `docker.io=${upstream.url}` })
    try {
      upstream.set({ genericManifestType: true })
      const head = await fetch(`${fresh.url}/v2/library/app/manifests/v1`, { method: 'HEAD', headers: { accept: image.mediaType } })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-type'), image.mediaType)
      const get = await fetch(`${fresh.url}/v2/library/app/manifests/v1`, { headers: { accept: image.mediaType } })
      assert.equal(get.headers.get('content-type'), image.mediaType)
      await get.arrayBuffer()
      const byDigest = await fetch(`${fresh.url}/v2/library/app/manifests/${image.manifestDigest}`, {
        headers: { accept: image.mediaType }
      })
      assert.equal(byDigest.headers.get('content-type'), image.mediaType)
      await byDigest.arrayBuffer()
      const out = await mkdtemp(join(work, 'pull-generic-'))
      await pullToLayout(fresh.host, 'library/app', 'v1', out)
    } finally {
      await fresh.destroy()
    }
  })
})
