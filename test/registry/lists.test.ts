import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, sha256, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout, runSkopeo, skopeoCopy } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'
import { startMisbehavingRegistry, type MisbehavingRegistry } from '../fixtures/misbehaving-registry.js'

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const SBOM = 'application/vnd.example.sbom.v1+json'

/**
 * The rest of the pull API: `tags/list` (skopeo list-tags, `n`/`last` paging with the `Link`
 * pointing at the sidecar, the last answer while the upstream is down) and the OCI 1.1
 * referrers API over a registry without one (distribution 2.8: the `sha256-<hex>` fallback tag).
 */
describe('registry mirror: tags/list and referrers', function () {
  this.timeout(120_000)
  let work: string
  let registry: Registry
  let sidecar: SidecarProcess
  let image: ImageDescription
  let upstream: MisbehavingRegistry

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-lists-'))
    registry = await startRegistry()
    image = await buildImage(join(work, 'img'), { tag: 'v1', layers: 1 })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'team/app')
    for (const tag of ['v2', 'v3']) {
      await skopeoCopy(`docker://${registry.host}/team/app:v1`, `docker://${registry.host}/team/app:${tag}`, {
        srcTlsVerify: false,
        destTlsVerify: false,
        all: true,
        preserveDigests: true
      })
    }
    // In front of the registry, a proxy that pages tags/list as Docker Hub does (distribution 2.8 doesn't).
    upstream = await startMisbehavingRegistry(registry.url)
    upstream.set({ paginateTags: true })
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${upstream.url}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await sidecar?.destroy()
    await upstream?.close()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it("skopeo list-tags through the sidecar lists the upstream's tags", async () => {
    const r = await runSkopeo(['list-tags', '--tls-verify=false', `docker://${sidecar.host}/team/app`])
    assert.deepEqual((JSON.parse(r.stdout) as { Tags: string[] }).Tags.sort(), ['v1', 'v2', 'v3'])
  })

  it("?n=2 pages: the upstream's absolute Link to the next page becomes the sidecar's, and following it ends the list", async () => {
    const first = await fetch(`${sidecar.url}/v2/team/app/tags/list?n=2`)
    assert.equal(first.status, 200)
    assert.deepEqual((await first.json() as { tags: string[] }).tags, ['v1', 'v2'])
    const link = first.headers.get('link') ?? ''
    const next = /^<(\/v2\/team\/app\/tags\/list\?[^>]+)>; rel="next"$/.exec(link)?.[1]
    assert.ok(next, `Link: ${link}`)
    const second = await fetch(`${sidecar.url}${next}`)
    assert.deepEqual((await second.json() as { tags: string[] }).tags, ['v3'])
    assert.equal(second.headers.get('link'), null)
  })

  it("an unknown repository is the upstream's 404 NAME_UNKNOWN", async () => {
    const res = await fetch(`${sidecar.url}/v2/team/nothing/tags/list`)
    assert.equal(res.status, 404)
    assert.equal((await res.json() as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN')
  })

  it('referrers of a digest with none: 200 and an empty OCI index (the upstream has no referrers API)', async () => {
    const res = await fetch(`${sidecar.url}/v2/team/app/referrers/${image.manifestDigest}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), OCI_INDEX)
    assert.deepEqual(await res.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] })
  })

  it('referrers from the fallback tag sha256-<hex>, filtered by artifactType with OCI-Filters-Applied', async () => {
    const descriptor = { mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifestSize, artifactType: SBOM }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor] }))
    const subject = image.manifests[0]?.configDigest ?? ''
    const fallbackTag = subject.replace(':', '-')
    const put = await fetch(`${registry.url}/v2/team/app/manifests/${fallbackTag}`, {
      method: 'PUT',
      headers: { 'content-type': OCI_INDEX },
      body: index
    })
    assert.equal(put.status, 201, await put.text())
    assert.equal(put.headers.get('docker-content-digest'), sha256(index))

    const all = await fetch(`${sidecar.url}/v2/team/app/referrers/${subject}`)
    assert.equal(all.status, 200)
    assert.deepEqual((await all.json() as { manifests: unknown[] }).manifests, [descriptor])
    const sboms = await fetch(`${sidecar.url}/v2/team/app/referrers/${subject}?artifactType=${encodeURIComponent(SBOM)}`)
    assert.equal(sboms.headers.get('oci-filters-applied'), 'artifactType')
    assert.deepEqual((await sboms.json() as { manifests: unknown[] }).manifests, [descriptor])
    const none = await fetch(`${sidecar.url}/v2/team/app/referrers/${subject}?artifactType=application%2Fvnd.example.other`)
    assert.deepEqual((await none.json() as { manifests: unknown[] }).manifests, [])
  })

  it('with the upstream stopped, the last tag list is served, marked stale', async () => {
    await (await fetch(`${sidecar.url}/v2/team/app/tags/list`)).arrayBuffer()
    await registry.stop()
    try {
      const res = await fetch(`${sidecar.url}/v2/team/app/tags/list`)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('x-cache'), 'HIT')
      assert.match(res.headers.get('warning') ?? '', /^110 p2p-cache "Response is Stale/)
      assert.deepEqual((await res.json() as { tags: string[] }).tags.filter(t => !t.startsWith('sha256-')).sort(), ['v1', 'v2', 'v3'])
    } finally {
      await registry.start()
    }
  })
})
