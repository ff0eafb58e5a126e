import assert from 'node:assert/strict'
import { access, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildMultiArchImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { CLI, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { Netns, netnsUnavailable } from '../fixtures/netns.js'
import { startDockerd, DOCKERD_BIN, type Dockerd } from '../fixtures/dockerd.js'
import { readExample } from './example-files.js'
import { skipUnlessCi } from '../fixtures/skip.js'

const REPO = 'library/p2pcache-engine'
const TAG = '1.0'

/**
 * examples/docker/daemon.json in a real Docker engine (Debian's docker.io, dockerd 20.10):
 * `docker pull` of a Docker Hub name goes to the sidecar. Everything runs in a network
 * namespace of its own with only loopback: the registry that stands in for Docker Hub, the
 * sidecar, dockerd; nothing dockerd tries (Docker Hub itself, after a failed mirror) can leave.
 */
describe('a real Docker engine (dockerd 20.10) with examples/docker/daemon.json', function () {
  this.timeout(240_000)
  let ns: Netns | undefined
  let work: string
  let registry: Registry
  let sidecar: SidecarProcess
  let dockerd: Dockerd
  let image: ImageDescription

  before(async function () {
    const why = await netnsUnavailable() ??
      await access(DOCKERD_BIN).then(() => undefined, () => `${DOCKERD_BIN} is missing (scripts/install-test-deps.sh installs docker.io)`)
    if (why !== undefined) {
      skipUnlessCi(this, why)
      return
    }
    ns = await Netns.create('p2pc-dockerd')
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-dockerd-test-'))
    registry = await startRegistry({ netns: ns })
    image = await buildMultiArchImage(join(work, 'layout'), {
      tag: TAG,
      architectures: ['amd64', 'arm64'],
      layers: 2,
      layerSize: 256 * 1024
    })
    await pushLayout(join(work, 'layout'), TAG, registry.host, REPO, { netns: ns.name })
    // The registry stands in for Docker Hub under its name: the default upstream.
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `docker.io=${registry.url}` }, { netns: ns })
    // The example's daemon.json, with the test sidecar's port.
    const example = JSON.parse(await readExample('docker', 'daemon.json')) as { 'registry-mirrors': string[] }
    const mirrors = example['registry-mirrors'].map(m => {
      const u = new URL(m)
      u.host = sidecar.host
      return u.href
    })
    dockerd = await startDockerd(ns, { ...example, 'registry-mirrors': mirrors })
    await registry.settled()
    registry.clearRequests()
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await stopAll([dockerd, sidecar, registry])
    await ns?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  const pull = async (): Promise<{ code: number, out: string }> => {
    const r = await dockerd.docker(['pull', `p2pcache-engine:${TAG}`])
    return { code: r.code, out: `${r.stdout}${r.stderr}` }
  }
  /** Removes the image so the next pull fetches it again (already gone is fine). */
  const rmi = async (): Promise<void> => {
    const r = await dockerd.docker(['rmi', `p2pcache-engine:${TAG}`])
    assert.ok(r.code === 0 || /No such image/.test(r.stderr), r.stderr)
  }

  /** `p2p-cache diagnose --json` inside the namespace: its client.docker finding. */
  const dockerFinding = async (): Promise<{ verdict: string, summary: string, fix?: string }> => {
    assert.ok(ns)
    const r = await ns.run(process.execPath, [
      CLI,
      'diagnose',
      '--json',
      '--http',
      sidecar.url,
      '--docker-host',
      dockerd.host,
      '--containerd-hosts',
      join(work, 'no-containerd')
    ], {
      env: {
        PATH: process.env.PATH,
        HOME: work,
        CACHE_DIR: join(work, 'diagnose'),
        CACHE_ENABLE_P2P: 'false',
        CACHE_HTTP_ADDR: sidecar.host,
        CACHE_REGISTRY_UPSTREAMS: `docker.io=${registry.url}`,
        CACHE_API_UPSTREAMS: `github=${registry.url}`
      },
      timeoutMs: 60_000
    })
    const report = JSON.parse(r.stdout) as { findings: Array<{ check: string, verdict: string, summary: string, fix?: string }> }
    const finding = report.findings.find(f => f.check === 'client.docker')
    assert.ok(finding, r.stdout.slice(0, 2000))
    return finding
  }

  it('diagnose before any pull: dockerd has the sidecar as its mirror but never reached it (a warning with the fix)', async () => {
    const f = await dockerFinding()
    assert.equal(f.verdict, 'warn', f.summary)
    assert.match(f.summary, /^dockerd has the sidecar as its mirror but never reached it/)
    assert.match(f.fix ?? '', /docker pull/)
  })

  it('docker info lists the sidecar as its registry mirror', async () => {
    const info = await dockerd.docker(['info', '--format', '{{json .RegistryConfig.Mirrors}}'])
    assert.equal(info.code, 0, info.stderr)
    assert.deepEqual(JSON.parse(info.stdout), [`http://${sidecar.host}/`])
  })

  it("cold pull: the image (a multi-arch index) comes through the sidecar, with the index's digest", async () => {
    const r = await pull()
    assert.equal(r.code, 0, `${r.out}\n--- dockerd ---\n${dockerd.tail()}`)
    assert.match(r.out, new RegExp(`Digest: ${image.manifestDigest}`))
    const digests = await dockerd.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', `p2pcache-engine:${TAG}`])
    assert.deepEqual(JSON.parse(digests.stdout), [`p2pcache-engine@${image.manifestDigest}`])
    const amd64 = image.manifests.find(m => m.architecture === 'amd64')
    assert.ok(amd64)
    await registry.settled()
    for (const layer of amd64.layers) {
      assert.equal(registry.count({ method: 'GET', pathIncludes: layer.digest }), 1, `layer ${layer.digest} fetched once upstream`)
    }
    const stats = await sidecar.stats()
    assert.ok((stats.stores ?? 0) >= 2 + amd64.layers.length, JSON.stringify(stats))
  })

  it('diagnose after a pull: dockerd uses the sidecar, and its last request is named', async () => {
    const f = await dockerFinding()
    assert.equal(f.verdict, 'ok', f.summary)
    assert.match(
      f.summary,
      /^dockerd uses the sidecar as its registry mirror; its last request reached the sidecar \d+ s ago \(\d+ in all\)$/
    )
  })

  it('warm pull after docker rmi: served from the sidecar, the upstream sees no blob GET', async () => {
    await rmi()
    await registry.settled()
    registry.clearRequests()
    const before = await sidecar.stats()
    const r = await pull()
    assert.equal(r.code, 0, r.out)
    await registry.settled()
    assert.equal(registry.count({ kind: 'blob' }), 0, JSON.stringify(registry.requests()))
    const after = await sidecar.stats()
    assert.ok((after.hits ?? 0) > (before.hits ?? 0))
  })

  it("with the upstream stopped, the pull still works from the sidecar (the tag's last resolution)", async () => {
    await rmi()
    await registry.stop()
    try {
      const r = await pull()
      assert.equal(r.code, 0, r.out)
    } finally {
      await registry.start()
    }
  })

  it('with the sidecar down, dockerd silently falls back to Docker Hub: the error names registry-1.docker.io, not the mirror', async () => {
    await rmi()
    await sidecar.stop()
    try {
      const r = await pull()
      assert.notEqual(r.code, 0)
      // The namespace has no route out: what dockerd tried next is Docker Hub itself.
      assert.match(r.out, /registry-1\.docker\.io|index\.docker\.io/, r.out)
      assert.doesNotMatch(r.out, new RegExp(sidecar.host.replace(/\./g, '\\.')))
    } finally {
      await sidecar.restart()
    }
  })
})
