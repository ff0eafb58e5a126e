import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildImage, buildMultiArchImage, type ImageDescription } from '../fixtures/oci-image.js'
import { layoutBlobDigests, skopeoCopy } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'
import { Netns, netnsUnavailable, run } from '../fixtures/netns.js'
import { startDockerd, DOCKERD_BIN, type Dockerd } from '../fixtures/dockerd.js'
import { startHerd, type Herd, type HerdNode } from '../fixtures/herd.js'
import { waitFor } from '../fixtures/wait.js'
import { startContainerd, type Containerd } from '../fixtures/containerd.js'

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

/**
 * Issue 25, first part: the local namespace accepts the OCI push API on one sidecar (a real
 * process, skopeo as the client, and the spec's request sequences sent by hand).
 */
describe('the local namespace accepts pushes (OCI distribution push API)', function () {
  this.timeout(120_000)
  let work: string
  let sidecar: SidecarProcess
  let image: ImageDescription

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-push-'))
    image = await buildMultiArchImage(join(work, 'layout'), { tag: '1', architectures: ['amd64', 'arm64'], layers: 2, layerSize: 96 * 1024 })
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' })
  })

  afterEach(function () { dumpLogsIfFailed(this, { sidecar }) })

  after(async () => {
    await sidecar?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('skopeo pushes a multi-platform image to local/app:1 and pulls it back, digests unchanged', async () => {
    await skopeoCopy(`oci:${join(work, 'layout')}:1`, `docker://${sidecar.host}/local/app:1`, { all: true, preserveDigests: true, destTlsVerify: false })
    const out = join(work, 'pulled')
    await skopeoCopy(`docker://${sidecar.host}/local/app:1`, `oci:${out}:1`, { all: true, preserveDigests: true, srcTlsVerify: false })
    assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(image.allBlobDigests))
    const tags = await (await fetch(`${sidecar.url}/v2/local/app/tags/list`)).json() as { tags: string[] }
    assert.deepEqual(tags, { name: 'local/app', tags: ['1'] })
    const stats = await sidecar.stats()
    assert.ok((stats.pushes ?? 0) >= 1 && (stats.bytes_pushed ?? 0) > 0)
  })

  it('a chunked upload (POST, PATCH with Content-Range, PUT ?digest=) commits only the bytes that hash to the digest', async () => {
    const blob = Buffer.from('chunked upload '.repeat(5000))
    const start = await fetch(`${sidecar.url}/v2/local/chunks/blobs/uploads/`, { method: 'POST' })
    assert.equal(start.status, 202)
    const location = new URL(start.headers.get('location') ?? '', sidecar.url)
    const half = 30_000
    const first = await fetch(location, { method: 'PATCH', headers: { 'content-range': `0-${half - 1}`, 'content-type': 'application/octet-stream' }, body: blob.subarray(0, half) })
    assert.equal(first.status, 202)
    assert.equal(first.headers.get('range'), `0-${half - 1}`)
    const wrongStart = await fetch(location, { method: 'PATCH', headers: { 'content-range': '10-20' }, body: blob.subarray(10, 21) })
    assert.equal(wrongStart.status, 416, 'a chunk that does not continue the upload')
    const status = await fetch(location)
    assert.equal(status.status, 204)
    assert.equal(status.headers.get('range'), `0-${half - 1}`, 'the client can resume from here')
    const put = new URL(location)
    put.searchParams.set('digest', digestOf(blob))
    const done = await fetch(put, { method: 'PUT', body: blob.subarray(half) })
    assert.equal(done.status, 201)
    assert.equal(done.headers.get('docker-content-digest'), digestOf(blob))
    const back = Buffer.from(await (await fetch(`${sidecar.url}/v2/local/chunks/blobs/${digestOf(blob)}`)).arrayBuffer())
    assert.ok(back.equals(blob))
  })

  it('a wrong digest is refused and nothing is stored; a manifest whose blobs are missing is refused; mounts link what is here', async () => {
    const blob = Buffer.from('monolithic')
    const wrong = digestOf(Buffer.from('something else'))
    const refused = await fetch(`${sidecar.url}/v2/local/mono/blobs/uploads/?digest=${wrong}`, { method: 'POST', body: blob })
    assert.equal(refused.status, 400)
    assert.match(await refused.text(), /DIGEST_INVALID/)
    assert.equal((await fetch(`${sidecar.url}/v2/local/mono/blobs/${wrong}`, { method: 'HEAD' })).status, 404)
    assert.equal((await fetch(`${sidecar.url}/v2/local/mono/blobs/${digestOf(blob)}`, { method: 'HEAD' })).status, 404)
    const ok = await fetch(`${sidecar.url}/v2/local/mono/blobs/uploads/?digest=${digestOf(blob)}`, { method: 'POST', body: blob })
    assert.equal(ok.status, 201)
    const mount = await fetch(`${sidecar.url}/v2/local/other/blobs/uploads/?mount=${digestOf(blob)}&from=local/mono`, { method: 'POST' })
    assert.equal(mount.status, 201, 'a blob already here is mounted')
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(Buffer.from('no such config')), size: 14 }, layers: [] })
    const missing = await fetch(`${sidecar.url}/v2/local/mono/manifests/1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest })
    assert.equal(missing.status, 400)
    assert.match(await missing.text(), /MANIFEST_BLOB_UNKNOWN/)
  })

  it('BuildKit\'s registry cache export (an index of layers and an application/vnd.buildkit.cacheconfig.v0 config) is accepted and served back', async () => {
    const push = async (body: Buffer): Promise<string> => {
      const r = await fetch(`${sidecar.url}/v2/local/cache/blobs/uploads/?digest=${digestOf(body)}`, { method: 'POST', body })
      assert.equal(r.status, 201)
      return digestOf(body)
    }
    const layer = Buffer.from('a cached build step')
    const config = Buffer.from(JSON.stringify({ layers: [{ blob: digestOf(layer), parent: -1 }], records: [{ digest: 'sha256:0', layers: [{ layer: 0 }] }] }))
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await push(layer), size: layer.byteLength, annotations: { 'buildkit/createdat': '2026-12-07T00:00:00Z' } },
        { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: await push(config), size: config.byteLength }
      ]
    })
    const put = await fetch(`${sidecar.url}/v2/local/cache/manifests/buildcache`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index })
    assert.equal(put.status, 201)
    const back = await fetch(`${sidecar.url}/v2/local/cache/manifests/buildcache`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })
    assert.equal(back.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
    assert.equal(await back.text(), index)
  })

  it('podman pushes an image it pulled from the local namespace under another name', async function () {
    if (await access('/usr/bin/podman').then(() => false, () => true)) { this.skip(); return }
    const root = join(work, 'podman')
    const podman = async (args: string[]): Promise<void> => {
      const r = await run('podman', ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', ...args], {
        env: { PATH: process.env.PATH, HOME: root, XDG_RUNTIME_DIR: root, TMPDIR: root },
        timeoutMs: 120_000
      })
      assert.equal(r.code, 0, `podman ${args.join(' ')}: ${r.stdout}${r.stderr}`)
    }
    await mkdir(root, { recursive: true })
    await podman(['pull', '--quiet', '--tls-verify=false', '--platform', 'linux/amd64', `${sidecar.host}/local/app:1`])
    await podman(['push', '--quiet', '--tls-verify=false', `${sidecar.host}/local/app:1`, `docker://${sidecar.host}/local/podman:1`])
    const tags = await (await fetch(`${sidecar.url}/v2/local/podman/tags/list`)).json() as { tags: string[] }
    assert.deepEqual(tags.tags, ['1'])
  })

  it('pushes outside the namespace are refused naming it; a tag is deleted', async () => {
    const outside = await fetch(`${sidecar.url}/v2/library/app/blobs/uploads/`, { method: 'POST' })
    assert.equal(outside.status, 405)
    assert.match(await outside.text(), /UNSUPPORTED.*\/v2\/local\/ \(CACHE_LOCAL_NAMESPACE\)/)
    assert.equal((await fetch(`${sidecar.url}/v2/local/app/manifests/1`, { method: 'DELETE' })).status, 202)
    assert.equal((await fetch(`${sidecar.url}/v2/local/app/manifests/1`, { method: 'HEAD' })).status, 404)
    const tags = await (await fetch(`${sidecar.url}/v2/local/app/tags/list`)).json() as { tags: string[] }
    assert.deepEqual(tags.tags, [])
  })
})

/**
 * dockerd 20.10 (Debian's docker.io) against the local namespace, in a namespace of its own:
 * `docker pull` of a skopeo push, then `docker push` of it under another name (dockerd mounts
 * the blobs across repositories) and `docker pull` of that, with no registry setting at all
 * (dockerd allows plain HTTP to 127.0.0.0/8).
 */
describe('dockerd pushes to and pulls from the local namespace', function () {
  this.timeout(240_000)
  let ns: Netns | undefined
  let work: string
  let sidecar: SidecarProcess
  let dockerd: Dockerd

  before(async function () {
    const why = await netnsUnavailable() ?? await access(DOCKERD_BIN).then(() => undefined, () => `${DOCKERD_BIN} is missing`)
    if (why !== undefined) { this.skip(); return }
    ns = await Netns.create('p2pc-dpush')
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-dpush-'))
    await buildImage(join(work, 'layout'), { tag: '1', layers: 2, layerSize: 64 * 1024 })
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' }, { netns: ns })
    dockerd = await startDockerd(ns, {})
    await skopeoCopy(`oci:${join(work, 'layout')}:1`, `docker://${sidecar.host}/local/app:1`, { destTlsVerify: false, netns: ns.name })
  })

  afterEach(function () { dumpLogsIfFailed(this, { sidecar }) })

  after(async () => {
    await dockerd?.destroy()
    await sidecar?.destroy()
    await ns?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('docker pull, docker push under another name (mounted blobs), docker pull of the pushed tag', async () => {
    const run = async (args: string[]): Promise<void> => {
      const r = await dockerd.docker(args)
      assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stdout}${r.stderr}\n${dockerd.tail()}`)
    }
    await run(['pull', `${sidecar.host}/local/app:1`])
    await run(['tag', `${sidecar.host}/local/app:1`, `${sidecar.host}/local/copy:2`])
    await run(['push', `${sidecar.host}/local/copy:2`])
    await run(['rmi', `${sidecar.host}/local/app:1`, `${sidecar.host}/local/copy:2`])
    await run(['pull', `${sidecar.host}/local/copy:2`])
    const stats = await sidecar.stats()
    assert.ok((stats.pushes ?? 0) >= 2, 'skopeo\'s push and docker\'s')
  })
})

/**
 * Two sidecars in a private swarm (CACHE_SWARM_KEY): a tag pushed to one resolves on the other,
 * whose pull takes the blobs from the first; the newest write of a tag wins on both; a DELETE is
 * such a write.
 */
describe('the local namespace across the swarm (two sidecars, one swarm key)', function () {
  this.timeout(180_000)
  let herd: Herd
  let a: HerdNode
  let b: HerdNode
  let work: string
  let v1: ImageDescription
  let v2: ImageDescription

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-push-swarm-'))
    v1 = await buildImage(join(work, 'v1'), { tag: '1', layers: 2, layerSize: 128 * 1024 })
    v2 = await buildImage(join(work, 'v2'), { tag: '1', layers: 1, layerSize: 64 * 1024 })
    herd = await startHerd({ count: 2, env: { CACHE_SWARM_KEY: randomBytes(32).toString('hex'), CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1', CACHE_LOG_LEVEL: 'debug' } })
    ;[a, b] = herd.nodes as [HerdNode, HerdNode]
  })

  afterEach(function () { dumpLogsIfFailed(this, { a, b }) })

  after(async () => {
    await herd?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  /** Resolves once `node` announced the record of `local/shared:1` (later writes are found at the same provider). */
  const announced = async (node: HerdNode): Promise<void> => {
    await waitFor(() => node.logs().filter(l => l.includes('"key":"rec:push-tag local/shared:1"') && l.includes('"msg":"announced"')).length >= 1,
      { timeoutMs: 40_000, what: `${node.name} to announce the tag record` })
  }
  const digestOn = async (node: HerdNode): Promise<string | null> => {
    const r = await fetch(`${node.url}/v2/local/shared/manifests/1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
    return r.status === 200 ? r.headers.get('docker-content-digest') : null
  }

  it('a tag pushed to A is pulled on B, the blobs from A, verified', async () => {
    await skopeoCopy(`oci:${join(work, 'v1')}:1`, `docker://${a.host}/local/shared:1`, { destTlsVerify: false })
    await announced(a)
    const out = join(work, 'pulled-b')
    await skopeoCopy(`docker://${b.host}/local/shared:1`, `oci:${out}:1`, { srcTlsVerify: false })
    assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(v1.allBlobDigests))
    const stats = await b.stats()
    assert.ok((stats.bytes_from_peers ?? 0) >= 256 * 1024, `B took the layers from A (${JSON.stringify(stats)})`)
  })

  it('the newest write of a tag wins on every node; a DELETE is a write too', async () => {
    await skopeoCopy(`oci:${join(work, 'v2')}:1`, `docker://${b.host}/local/shared:1`, { destTlsVerify: false })
    await announced(b)
    assert.equal(await digestOn(a), v2.manifests[0]?.digest, 'A resolves B\'s newer push')
    assert.equal(await digestOn(b), v2.manifests[0]?.digest)
    assert.equal((await fetch(`${a.url}/v2/local/shared/manifests/1`, { method: 'DELETE' })).status, 202)
    assert.equal(await digestOn(b), null, 'B sees A\'s newer delete')
  })
})

/**
 * containerd's pusher (`ctr images push --plain-http`), the code BuildKit's registry exporter
 * uses: HEAD of each blob, POST (with a mount when it knows a source), one streamed PUT, then the
 * manifest. The image comes from one sidecar's local namespace and is pushed to another's.
 */
describe('containerd\'s pusher (ctr images push --plain-http) into the local namespace', function () {
  this.timeout(120_000)
  let work: string
  let from: SidecarProcess
  let to: SidecarProcess
  let containerd: Containerd
  let image: ImageDescription

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-ctr-push-'))
    image = await buildImage(join(work, 'layout'), { tag: '1', layers: 2, layerSize: 256 * 1024 })
    const env = { CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' }
    ;[from, to, containerd] = await Promise.all([startSidecar(env), startSidecar(env), startContainerd()])
    await skopeoCopy(`oci:${join(work, 'layout')}:1`, `docker://${from.host}/local/app:1`, { destTlsVerify: false })
  })

  afterEach(function () { dumpLogsIfFailed(this, { from, to }) })

  after(async () => {
    await containerd?.destroy()
    await Promise.all([from?.destroy(), to?.destroy()])
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('pushes every blob with a single streamed PUT and the manifest; the image pulls back unchanged', async () => {
    await containerd.ctrPull(`${from.host}/local/app:1`, { hostsDir: join(work, 'no-hosts'), plainHttp: true })
    await containerd.ctr(['images', 'tag', `${from.host}/local/app:1`, `${to.host}/local/ctr:1`])
    await containerd.ctr(['images', 'push', '--plain-http', `${to.host}/local/ctr:1`])
    const out = join(work, 'pulled')
    await skopeoCopy(`docker://${to.host}/local/ctr:1`, `oci:${out}:1`, { srcTlsVerify: false })
    assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(image.allBlobDigests))
    const stats = await to.stats()
    assert.ok((stats.bytes_pushed ?? 0) >= 512 * 1024 && (stats.pushes ?? 0) === 1)
  })
})
