import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OPTIONS } from '../../src/config/options.js'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildMultiArchImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { readExample } from './example-files.js'

/** What dockerd 28 (its distribution client) sends for a manifest: one Accept line per type. */
const DOCKERD_MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json'
]
const DOCKERD_USER_AGENT =
  'docker/28.2.2 go/go1.24.3 git-commit/e6534b4 kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/28.2.2 \\(linux\\))'
/** Docker Hub's official images live under library/: dockerd adds it before asking a mirror. */
const REPO = 'library/p2pcache-example'
const TAG = '1.0'

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** One GET through node:http, so that repeated header lines go out as dockerd sends them. */
function get (url: string, headers: OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 30_000, headers: { 'user-agent': DOCKERD_USER_AGENT, ...headers } }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => {
        chunks.push(c)
      })
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
      })
      res.once('error', reject)
    })
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: no answer`)))
    req.once('error', reject)
    req.end()
  })
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe('examples/docker/daemon.json', function () {
  this.timeout(60_000)
  let mirrors: string[]

  before(async () => {
    const json = JSON.parse(await readExample('docker', 'daemon.json')) as Record<string, unknown>
    assert.deepEqual(Object.keys(json), ['registry-mirrors'])
    const list = json['registry-mirrors']
    assert.ok(Array.isArray(list) && list.every(m => typeof m === 'string'))
    mirrors = list as string[]
  })

  it("is JSON whose one mirror is the sidecar's default address, over http on loopback", () => {
    assert.equal(mirrors.length, 1)
    const url = new URL(mirrors[0] as string)
    assert.equal(url.protocol, 'http:')
    assert.equal(url.host, OPTIONS.httpAddr.default)
    // Docker treats 127.0.0.0/8 as an insecure registry by default: no insecure-registries entry needed.
    assert.match(url.hostname, /^127\./)
  })

  describe('a pull the way dockerd makes it through that mirror', function () {
    let work: string
    let registry: Registry
    let sidecar: SidecarProcess
    let image: ImageDescription
    /** The mirror URL from daemon.json, at the test sidecar's port (the path, if any, kept). */
    let base: string

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-docker-'))
      registry = await startRegistry()
      image = await buildMultiArchImage(join(work, 'layout'), {
        tag: TAG,
        architectures: ['amd64', 'arm64'],
        layers: 2,
        layerSize: 64 * 1024
      })
      await pushLayout(join(work, 'layout'), TAG, registry.host, REPO)
      // The local registry stands in for Docker Hub under its name: the first (default) upstream.
      sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `docker.io=${registry.url}` })
      const mirror = new URL(mirrors[0] as string)
      mirror.host = sidecar.host
      base = mirror.href.replace(/\/$/, '')
      await registry.settled()
      registry.clearRequests()
    })

    afterEach(function () {
      dumpLogsIfFailed(this, { sidecar })
    })

    after(async () => {
      await stopAll([sidecar, registry])
      await rm(work, { recursive: true, force: true })
    })

    /** GET /v2/, the tag's manifest (an index), the amd64 manifest, its config and layers: what each answered. */
    async function pull (): Promise<Array<{ what: string, cache: string }>> {
      const seen: Array<{ what: string, cache: string }> = []
      const note = (what: string, a: Answer): void => {
        seen.push({ what, cache: String(a.headers['x-cache'] ?? '') })
      }

      const ping = await get(`${base}/v2/`)
      assert.equal(ping.status, 200, 'GET /v2/')

      const index = await get(`${base}/v2/${REPO}/manifests/${TAG}`, { accept: DOCKERD_MANIFEST_ACCEPT })
      assert.equal(index.status, 200, index.body.toString())
      assert.equal(index.headers['content-type'], image.mediaType)
      assert.equal(index.headers['docker-content-digest'], image.manifestDigest)
      assert.equal(sha256(index.body), image.manifestDigest)
      note('tag', index)

      const amd64 = image.manifests.find(m => m.architecture === 'amd64')
      assert.ok(amd64 !== undefined)
      const listed =
        (JSON.parse(index.body.toString()) as { manifests: Array<{ digest: string, platform: { architecture: string } }> }).manifests
      assert.equal(listed.find(m => m.platform.architecture === 'amd64')?.digest, amd64.digest)
      const manifest = await get(`${base}/v2/${REPO}/manifests/${amd64.digest}`, { accept: DOCKERD_MANIFEST_ACCEPT })
      assert.equal(manifest.status, 200)
      assert.equal(sha256(manifest.body), amd64.digest)
      note('manifest', manifest)

      for (const digest of [amd64.configDigest, ...amd64.layers.map(l => l.digest)]) {
        const blob = await get(`${base}/v2/${REPO}/blobs/${digest}`)
        assert.equal(blob.status, 200, digest)
        assert.equal(sha256(blob.body), digest)
        note('blob', blob)
      }
      return seen
    }

    it('cold: everything comes through the sidecar from the upstream under library/, no ?ns= anywhere', async () => {
      const seen = await pull()
      assert.ok(seen.every(s => s.cache === 'MISS'), JSON.stringify(seen))
      await registry.settled()
      const upstream = registry.requests()
      assert.ok(upstream.length >= seen.length)
      for (const r of upstream) {
        assert.match(r.userAgent ?? '', /^p2p-cache\//, `made by the sidecar: ${JSON.stringify(r)}`)
        assert.ok(r.path.startsWith(`/v2/${REPO}/`) && !r.path.includes('ns='), r.path)
      }
    })

    it("warm: the same pull is served from the sidecar's store; only the tag is asked upstream", async () => {
      registry.clearRequests()
      const before = await sidecar.stats()
      const seen = await pull()
      assert.deepEqual(seen.filter(s => s.what !== 'tag').map(s => s.cache), seen.filter(s => s.what !== 'tag').map(() => 'HIT'))
      const after = await sidecar.stats()
      assert.ok((after.hits ?? 0) - (before.hits ?? 0) >= seen.length - 1, JSON.stringify({ before, after }))
      await registry.settled()
      assert.equal(registry.count({ kind: 'blob' }), 0, JSON.stringify(registry.requests()))
    })
  })
})
