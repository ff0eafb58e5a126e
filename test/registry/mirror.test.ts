import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, buildMultiArchImage, randomLayer, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout, pullToLayout, layoutBlobDigests } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { waitFor } from '../fixtures/wait.js'

/** Blobs of a pulled single-platform image that skopeo fetches as blobs (config + layers). */
function blobGets (image: ImageDescription): string[] {
  return [...new Set(image.manifests.flatMap(m => [m.configDigest, ...m.layers.map(l => l.digest)]))]
}

describe('registry mirror (docker-registry upstream, skopeo client)', function () {
  this.timeout(120_000)
  let work: string
  let registry: Registry
  let sidecar: SidecarProcess
  let app: ImageDescription
  let app2: ImageDescription
  let multi: ImageDescription

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-mirror-'))
    registry = await startRegistry()
    const base = [randomLayer(64 * 1024), randomLayer(32 * 1024)]
    app = await buildImage(join(work, 'app'), { tag: 'v1', baseLayers: base, layers: 1, layerSize: 48 * 1024 })
    app2 = await buildImage(join(work, 'app2'), { tag: 'v1', baseLayers: base, layers: 1 })
    multi = await buildMultiArchImage(join(work, 'multi'), { tag: 'v1', architectures: ['amd64', 'arm64'], layers: 1 })
    await pushLayout(join(work, 'app'), 'v1', registry.host, 'team/app')
    await pushLayout(join(work, 'app2'), 'v1', registry.host, 'team/app2')
    await pushLayout(join(work, 'multi'), 'v1', registry.host, 'team/multi')
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })
    await registry.settled()
    registry.clearRequests()
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  async function pull (repo: string, ref: string, opts: { all?: boolean } = {}): Promise<string[]> {
    const out = await mkdtemp(join(work, 'pull-'))
    await pullToLayout(sidecar.host, repo, ref, out, opts)
    return await layoutBlobDigests(out)
  }

  it('cold pull goes upstream once per blob and every blob verifies', async () => {
    const got = await pull('team/app', 'v1')
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
    await registry.settled()
    for (const digest of blobGets(app)) {
      assert.equal(registry.count({ method: 'GET', pathIncludes: `/blobs/${digest}` }), 1, `one upstream GET of ${digest}`)
    }
    // A blob is committed (fsync, rename, index) just after its last byte went to the client:
    // on a loaded machine the count may trail the pull by a moment.
    const stats = await waitFor(async () => {
      const s = await sidecar.stats()
      return (s.stores ?? 0) >= app.allBlobDigests.length ? s : undefined
    }, { timeoutMs: 10_000, what: 'every pulled blob to be committed' }).catch(async () => await sidecar.stats())
    assert.equal(stats.stores, app.allBlobDigests.length)
    assert.ok((stats.bytes_from_upstream ?? 0) > 0)
  })

  it('a second image sharing base layers fetches only its own blobs upstream', async () => {
    registry.clearRequests()
    const got = await pull('team/app2', 'v1')
    assert.deepEqual(new Set(got), new Set(app2.allBlobDigests))
    await registry.settled()
    const shared = app.layers.filter(l => app2.layers.some(m => m.digest === l.digest))
    assert.equal(shared.length, 2)
    for (const layer of shared) {
      assert.equal(registry.count({ pathIncludes: `/blobs/${layer.digest}` }), 0, 'shared layer served from the store')
    }
    assert.equal(registry.count({ kind: 'blob', method: 'GET' }), blobGets(app2).length - shared.length)
  })

  it('warm pull fetches no blob upstream; the tag is still resolved upstream with HEAD', async () => {
    registry.clearRequests()
    const got = await pull('team/app', 'v1')
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
    await registry.settled()
    assert.equal(registry.count({ kind: 'blob' }), 0)
    assert.equal(registry.count({ kind: 'manifest', method: 'GET' }), 0)
    assert.equal(registry.count({ kind: 'manifest', method: 'HEAD', pathIncludes: '/manifests/v1' }), 1)
  })

  it('pulls a multi-arch index with every platform', async () => {
    const got = await pull('team/multi', 'v1', { all: true })
    assert.deepEqual(new Set(got), new Set(multi.allBlobDigests))
    const res = await fetch(`${sidecar.url}/v2/team/multi/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
    assert.equal(res.headers.get('docker-content-digest'), multi.manifestDigest)
    assert.equal(res.headers.get('x-cache'), 'HIT')
  })

  it('serves a warm pull by tag while the upstream is stopped, and says so', async () => {
    await registry.stop()
    try {
      const got = await pull('team/app', 'v1')
      assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
      const res = await fetch(`${sidecar.url}/v2/team/app/manifests/v1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }
      })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('docker-content-digest'), app.manifestDigest)
      assert.match(res.headers.get('warning') ?? '', /^110 /)
      assert.ok(res.headers.get('x-cache-stale-tag'))
      const stats = await sidecar.stats()
      assert.ok((stats.stale_tags_served ?? 0) >= 1)
      // Content never seen before cannot be served: a clear 502, not a hang.
      const miss = await fetch(`${sidecar.url}/v2/team/app/blobs/sha256:${'0'.repeat(64)}`)
      assert.equal(miss.status, 502)
      const body = await miss.json() as { errors: Array<{ code: string, message: string }> }
      assert.equal(body.errors[0]?.code, 'UPSTREAM_UNAVAILABLE')
      assert.match(body.errors[0]?.message ?? '', /unavailable/)
    } finally {
      await registry.start()
    }
  })

  it('lets the upstream decide when it answers: a moved tag is never masked', async () => {
    const moved = await buildImage(join(work, 'app-moved'), { tag: 'v1', layers: 1 })
    await pushLayout(join(work, 'app-moved'), 'v1', registry.host, 'team/app')
    const got = await pull('team/app', 'v1')
    assert.deepEqual(new Set(got), new Set(moved.allBlobDigests))
  })
})
