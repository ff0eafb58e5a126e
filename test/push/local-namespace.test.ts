import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
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
import { freePort } from '../fixtures/ports.js'
import { skipUnlessCi } from '../fixtures/skip.js'

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
    image = await buildMultiArchImage(join(work, 'layout'), {
      tag: '1',
      architectures: ['amd64', 'arm64'],
      layers: 2,
      layerSize: 96 * 1024
    })
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await sidecar?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('skopeo pushes a multi-platform image to local/app:1 and pulls it back, digests unchanged', async () => {
    await skopeoCopy(`oci:${join(work, 'layout')}:1`, `docker://${sidecar.host}/local/app:1`, {
      all: true,
      preserveDigests: true,
      destTlsVerify: false
    })
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
    const first = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-range': `0-${half - 1}`, 'content-type': 'application/octet-stream' },
      body: blob.subarray(0, half)
    })
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

  it('a chunk whose connection is cut mid-body: the upload keeps what arrived, and the client resumes from its Range', async () => {
    const blob = randomBytes(400_000)
    const start = await fetch(`${sidecar.url}/v2/local/cut/blobs/uploads/`, { method: 'POST' })
    const location = new URL(start.headers.get('location') ?? '', sidecar.url)
    // A PATCH announcing the whole blob, cut after about half of it.
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: sidecar.port }, () => {
        socket.write(
          `PATCH ${location.pathname} HTTP/1.1\r\nHost: ${sidecar.host}\r\nContent-Type: application/octet-stream\r\nContent-Range: 0-${
            blob.byteLength - 1
          }\r\nContent-Length: ${blob.byteLength}\r\n\r\n`
        )
        socket.write(blob.subarray(0, 200_000), () => {
          socket.destroy()
          resolve()
        })
      })
      socket.on('error', reject)
    })
    // Until the server has seen the cut: some bytes in, and the same count twice in a row (an
    // empty upload says 0-0 too, so a count of 1 is not taken).
    let received = 0
    let last = -1
    await waitFor(async () => {
      const status = await fetch(location)
      const now = Number(/^0-(\d+)$/.exec(status.headers.get('range') ?? '')?.[1] ?? -1) + 1
      const settled = status.status === 204 && now > 1 && now === last
      last = now
      received = now
      return settled
    }, { timeoutMs: 10_000, what: "the cut chunk's bytes in the upload" })
    assert.ok(received <= 200_000, `no more than was sent (${received})`)
    const rest = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-range': `${received}-${blob.byteLength - 1}` },
      body: blob.subarray(received)
    })
    assert.equal(rest.status, 202)
    const put = new URL(location)
    put.searchParams.set('digest', digestOf(blob))
    assert.equal((await fetch(put, { method: 'PUT' })).status, 201)
    const back = Buffer.from(await (await fetch(`${sidecar.url}/v2/local/cut/blobs/${digestOf(blob)}`)).arrayBuffer())
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
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(Buffer.from('no such config')), size: 14 },
      layers: []
    })
    const missing = await fetch(`${sidecar.url}/v2/local/mono/manifests/1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest
    })
    assert.equal(missing.status, 400)
    assert.match(await missing.text(), /MANIFEST_BLOB_UNKNOWN/)
  })

  it("BuildKit's registry cache export (an index of layers and an application/vnd.buildkit.cacheconfig.v0 config) is accepted and served back", async () => {
    const push = async (body: Buffer): Promise<string> => {
      const r = await fetch(`${sidecar.url}/v2/local/cache/blobs/uploads/?digest=${digestOf(body)}`, { method: 'POST', body })
      assert.equal(r.status, 201)
      return digestOf(body)
    }
    const layer = Buffer.from('a cached build step')
    const config = Buffer.from(
      JSON.stringify({ layers: [{ blob: digestOf(layer), parent: -1 }], records: [{ digest: 'sha256:0', layers: [{ layer: 0 }] }] })
    )
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: await push(layer),
          size: layer.byteLength,
          annotations: { 'buildkit/createdat': '2026-12-07T00:00:00Z' }
        },
        { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: await push(config), size: config.byteLength }
      ]
    })
    const put = await fetch(`${sidecar.url}/v2/local/cache/manifests/buildcache`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: index
    })
    assert.equal(put.status, 201)
    const back = await fetch(`${sidecar.url}/v2/local/cache/manifests/buildcache`, {
      headers: { accept: 'application/vnd.oci.image.index.v1+json' }
    })
    assert.equal(back.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
    assert.equal(await back.text(), index)
  })

  it('podman pushes an image it pulled from the local namespace under another name', async function () {
    if (await access('/usr/bin/podman').then(() => false, () => true)) {
      skipUnlessCi(this, '/usr/bin/podman is missing (scripts/install-test-deps.sh installs it)')
      return
    }
    const root = join(work, 'podman')
    const podman = async (args: string[]): Promise<void> => {
      const r = await run('podman', [
        '--root',
        join(root, 'storage'),
        '--runroot',
        join(root, 'run'),
        '--storage-driver',
        'vfs',
        '--cgroup-manager',
        'cgroupfs',
        '--events-backend',
        'none',
        ...args
      ], {
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

  it('buildah pushes an image it pulled from the local namespace under another name', async function () {
    if (await access('/usr/bin/buildah').then(() => false, () => true)) {
      skipUnlessCi(this, '/usr/bin/buildah is missing (scripts/install-test-deps.sh installs it)')
      return
    }
    const root = join(work, 'buildah')
    const buildah = async (args: string[]): Promise<void> => {
      const r = await run(
        'buildah',
        ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', ...args],
        {
          env: { PATH: process.env.PATH, HOME: root, XDG_RUNTIME_DIR: root, TMPDIR: root },
          timeoutMs: 120_000
        }
      )
      assert.equal(r.code, 0, `buildah ${args.join(' ')}: ${r.stdout}${r.stderr}`)
    }
    await mkdir(root, { recursive: true })
    await buildah(['pull', '--quiet', '--tls-verify=false', '--platform', 'linux/amd64', `${sidecar.host}/local/app:1`])
    await buildah(['push', '--quiet', '--tls-verify=false', `${sidecar.host}/local/app:1`, `docker://${sidecar.host}/local/buildah:1`])
    const tags = await (await fetch(`${sidecar.url}/v2/local/buildah/tags/list`)).json() as { tags: string[] }
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
  let herd: Herd | undefined
  let build: HerdNode
  let test: HerdNode
  let dockerd: Dockerd

  before(async function () {
    const why = await netnsUnavailable() ?? await access(DOCKERD_BIN).then(() => undefined, () => `${DOCKERD_BIN} is missing`)
    if (why !== undefined) {
      skipUnlessCi(this, why)
      return
    }
    ns = await Netns.create('p2pc-dpush')
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-dpush-'))
    await buildImage(join(work, 'layout'), { tag: '1', layers: 2, layerSize: 64 * 1024 })
    // The README's recipe: the build job's sidecar and a test job's, in one swarm.
    herd = await startHerd({
      hosts: [{ name: 'build', ns, ip: '127.0.0.1', port: 9000 }, { name: 'test', ns, ip: '127.0.0.1', port: 9100 }],
      env: { CACHE_SWARM_KEY: randomBytes(32).toString('hex'), CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' }
    })
    ;[build, test] = herd.nodes as [HerdNode, HerdNode]
    dockerd = await startDockerd(ns, {})
    await skopeoCopy(`oci:${join(work, 'layout')}:1`, `docker://${build.host}/local/app:1`, { destTlsVerify: false, netns: ns.name })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { build, test })
  })

  after(async () => {
    await dockerd?.destroy()
    await herd?.destroy()
    await ns?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it("docker pull, docker push under another name (mounted blobs) on the build job's sidecar; docker pull of the pushed tag on a test job's", async () => {
    const run = async (args: string[]): Promise<void> => {
      const r = await dockerd.docker(args)
      assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stdout}${r.stderr}\n${dockerd.tail()}`)
    }
    const sha = randomBytes(20).toString('hex')
    await run(['pull', `${build.host}/local/app:1`])
    await run(['tag', `${build.host}/local/app:1`, `${build.host}/local/app:${sha}`])
    await run(['push', `${build.host}/local/app:${sha}`])
    await run(['rmi', `${build.host}/local/app:1`, `${build.host}/local/app:${sha}`])
    await run(['pull', `${test.host}/local/app:${sha}`])
    const stats = await build.stats()
    assert.ok((stats.pushes ?? 0) >= 2, "skopeo's push and docker's")
    assert.ok((stats.replicas_placed ?? 0) >= 3, 'held by the other node before each push was acknowledged')
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
    herd = await startHerd({
      count: 2,
      env: {
        CACHE_SWARM_KEY: randomBytes(32).toString('hex'),
        CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
        CACHE_LOG_LEVEL: 'debug'
      }
    })
    ;[a, b] = herd.nodes as [HerdNode, HerdNode]
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { a, b })
  })

  after(async () => {
    await herd?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  /** Resolves once `node` announced the record of `local/shared:1` (later writes are found at the same provider). */
  const announced = async (node: HerdNode): Promise<void> => {
    await waitFor(
      () => node.logs().filter(l => l.includes('"key":"rec:push-tag local/shared:1"') && l.includes('"msg":"announced"')).length >= 1,
      { timeoutMs: 40_000, what: `${node.name} to announce the tag record` }
    )
  }
  const digestOn = async (node: HerdNode): Promise<string | null> => {
    const r = await fetch(`${node.url}/v2/local/shared/manifests/1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }
    })
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
    assert.equal(await digestOn(a), v2.manifests[0]?.digest, "A resolves B's newer push")
    assert.equal(await digestOn(b), v2.manifests[0]?.digest)
    assert.equal((await fetch(`${a.url}/v2/local/shared/manifests/1`, { method: 'DELETE' })).status, 202)
    assert.equal(await digestOn(b), null, "B sees A's newer delete")
  })

  it('two runners push the same tag at once: both nodes end with the same digest', async () => {
    await Promise.all([
      skopeoCopy(`oci:${join(work, 'v1')}:1`, `docker://${a.host}/local/race:1`, { destTlsVerify: false }),
      skopeoCopy(`oci:${join(work, 'v2')}:1`, `docker://${b.host}/local/race:1`, { destTlsVerify: false })
    ])
    const on = async (node: HerdNode): Promise<string | null> => {
      const r = await fetch(`${node.url}/v2/local/race/manifests/1`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }
      })
      return r.status === 200 ? r.headers.get('docker-content-digest') : null
    }
    const [onA, onB] = [await on(a), await on(b)]
    assert.ok(onA !== null && [v1.manifests[0]?.digest, v2.manifests[0]?.digest].includes(onA))
    assert.equal(
      onB,
      onA,
      'each push was held by the other node (with its tag record) before it was acknowledged: the newest write wins on both'
    )
  })
})

/**
 * containerd's pusher (`ctr images push --plain-http`), the code BuildKit's registry exporter
 * uses: HEAD of each blob, POST (with a mount when it knows a source), one streamed PUT, then the
 * manifest. The image comes from one sidecar's local namespace and is pushed to another's.
 */
describe("containerd's pusher (ctr images push --plain-http) into the local namespace", function () {
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

  afterEach(function () {
    dumpLogsIfFailed(this, { from, to })
  })

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

/**
 * Issue 25, point 3: a push survives the runner it was pushed to. Four sidecars in a private
 * swarm: a push to A is acknowledged only once another node (R) holds it; A is SIGKILLed right
 * after the acknowledgement and a third node lists the repository's tags and pulls the image
 * from R; R then stops gracefully and
 * hands what it keeps to a remaining node, from which the last one pulls. A fifth node that wants
 * more replicas than the swarm can give fails its manifest PUT with 503, naming both options.
 */
describe('a push survives its runner: replicas (four sidecars, one swarm key)', function () {
  this.timeout(180_000)
  const swarmKey = randomBytes(32).toString('hex')
  let herd: Herd
  let work: string
  let image: ImageDescription
  let greedy: SidecarProcess | undefined

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-push-replica-'))
    image = await buildImage(join(work, 'image'), { tag: '1', layers: 2, layerSize: 256 * 1024 })
    herd = await startHerd({
      count: 4,
      env: { CACHE_SWARM_KEY: swarmKey, CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1', CACHE_LOG_LEVEL: 'debug' }
    })
  })

  afterEach(function () {
    dumpLogsIfFailed(
      this,
      Object.fromEntries([...herd.nodes.map(n => [n.name, n] as const), ...(greedy !== undefined ? [['greedy', greedy] as const] : [])])
    )
  })

  after(async () => {
    await greedy?.destroy()
    await herd?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  /** The peers A's log says hold the push of `reference`. */
  const replicasOf = (node: HerdNode, reference: string): string[] => {
    const line = node.logs().find(l => l.includes('"msg":"manifest pushed"') && l.includes(`"reference":"${reference}"`))
    assert.ok(line !== undefined, `${node.name} logged the push of ${reference}`)
    return (JSON.parse(line) as { replicas: string[] }).replicas
  }

  it('is acknowledged once another node holds it; with the pusher SIGKILLed right after, another node pulls it from the replica; the replica hands it on when it stops', async () => {
    const [a, ...others] = herd.nodes as [HerdNode, HerdNode, HerdNode, HerdNode]
    await skopeoCopy(`oci:${join(work, 'image')}:1`, `docker://${a.host}/local/survivor:1`, { destTlsVerify: false })
    await a.kill()
    const held = replicasOf(a, '1')
    assert.equal(held.length, 1, 'one replica (CACHE_LOCAL_REPLICAS auto, with peers)')
    const r = others.find(n => n.peerId === held[0]) as HerdNode
    assert.ok(r !== undefined, 'the replica is on a node of the herd')
    assert.ok(((await r.stats()).replicas_held ?? 0) >= image.allBlobDigests.length)
    const [x, y] = others.filter(n => n !== r) as [HerdNode, HerdNode]

    const listed = await (await fetch(`${x.url}/v2/local/survivor/tags/list`)).json() as { tags: string[] }
    assert.deepEqual(listed.tags, ['1'], `${x.name} lists the tag it never saw (from the replica's listing)`)
    const fromX = join(work, 'pulled-x')
    await skopeoCopy(`docker://${x.host}/local/survivor:1`, `oci:${fromX}:1`, { srcTlsVerify: false })
    assert.deepEqual(new Set(await layoutBlobDigests(fromX)), new Set(image.allBlobDigests))
    assert.ok(((await x.stats()).bytes_from_peers ?? 0) >= 512 * 1024, `${x.name} took the layers from the replica`)

    await r.stop()
    const handed = r.logs().find(l => l.includes('handed the local namespace'))
    assert.ok(handed !== undefined, `${r.name} handed what it kept to a peer before stopping`)
    const to = (JSON.parse(handed) as { holders: string[] }).holders
    const last = [x, y].find(n => !to.includes(n.peerId)) ?? y
    const fromLast = join(work, 'pulled-last')
    await skopeoCopy(`docker://${last.host}/local/survivor:1`, `oci:${fromLast}:1`, { srcTlsVerify: false })
    assert.deepEqual(new Set(await layoutBlobDigests(fromLast)), new Set(image.allBlobDigests))
  })

  it("a manifest PUT that can't get its replicas in time fails with 503 naming CACHE_LOCAL_REPLICAS and CACHE_LOCAL_REPLICA_TIMEOUT, and tags nothing", async () => {
    const alive = herd.nodes.find(n => n.proc.child.exitCode === null && n.proc.child.signalCode === null) as HerdNode
    const port = await freePort()
    greedy = await startSidecar({
      CACHE_ENABLE_P2P: 'true',
      CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${port}`,
      CACHE_BOOTSTRAP_PEERS: alive.bootstrapAddr,
      CACHE_SWARM_KEY: swarmKey,
      CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
      CACHE_LOCAL_REPLICAS: '5',
      CACHE_LOCAL_REPLICA_TIMEOUT: '2s'
    })
    const node = greedy
    await waitFor(async () => ((await node.stats()).peers_connected ?? 0) >= 1, { timeoutMs: 20_000, what: 'the fifth node connected' })
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
    const upload = await fetch(`${node.url}/v2/local/greedy/blobs/uploads/?digest=${digestOf(config)}`, { method: 'POST', body: config })
    assert.equal(upload.status, 201)
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.byteLength },
      layers: []
    })
    const put = await fetch(`${node.url}/v2/local/greedy/manifests/1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest
    })
    const body = await put.json() as { errors: Array<{ code: string, message: string }> }
    assert.equal(put.status, 503)
    assert.equal(body.errors[0]?.code, 'REPLICAS_UNAVAILABLE')
    assert.match(body.errors[0]?.message ?? '', /CACHE_LOCAL_REPLICAS.*CACHE_LOCAL_REPLICA_TIMEOUT/)
    assert.match(body.errors[0]?.message ?? '', /of 5 replicas placed within 2 s/)
    assert.equal((await fetch(`${node.url}/v2/local/greedy/manifests/1`)).status, 404, 'the tag was not written')
    assert.equal((await node.stats()).replication_failures, 1)
  })
})
