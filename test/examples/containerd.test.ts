import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { startContainerd, type Containerd } from '../fixtures/containerd.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { run, type RunResult } from '../fixtures/netns.js'
import { examplePath, readExample } from './example-files.js'

const EXAMPLE_SERVER = 'server = "https://registry-1.docker.io"'
const EXAMPLE_MIRROR = '[host."http://127.0.0.1:9080"]'

/**
 * examples/containerd/hosts.toml with real containerd (ctr), and check-mirror.sh next to it. The
 * local docker-registry plays the upstream, under its own host name (127.0.0.1:<port>) since
 * that is the name containerd sends as ?ns=; the mirror is the test's sidecar on a free port.
 * Nothing else in the file changes.
 */
describe('examples/containerd: hosts.toml with ctr, and check-mirror.sh', function () {
  this.timeout(90_000)
  let work: string
  let hostsDir: string
  let registry: Registry
  let sidecar: SidecarProcess
  let containerd: Containerd
  let image: ImageDescription
  let ref: string

  /** check-mirror.sh as a user runs it, pointed at this test's sidecar and hosts dir. */
  const checkMirror = async (env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
    await run(examplePath('containerd', 'check-mirror.sh'), [ref], {
      env: { PATH: process.env.PATH, P2P_CACHE_URL: sidecar.url, CERTS_DIR: hostsDir, ...env },
      timeoutMs: 30_000
    })

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-containerd-'))
    hostsDir = join(work, 'certs.d')
    const [reg, ctd] = await Promise.all([startRegistry(), startContainerd()])
    registry = reg
    containerd = ctd
    image = await buildImage(join(work, 'layout'), { tag: 'v1', layers: 2, layerSize: 256 * 1024 })
    await pushLayout(join(work, 'layout'), 'v1', registry.host, 'team/app')
    ref = `${registry.host}/team/app:v1`
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })

    const example = await readExample('containerd', 'hosts.toml')
    assert.ok(example.includes(EXAMPLE_SERVER) && example.includes(EXAMPLE_MIRROR), 'the example still has the lines this test adapts')
    const toml = example.replace(EXAMPLE_SERVER, `server = "${registry.url}"`).replace(EXAMPLE_MIRROR, `[host."${sidecar.url}"]`)
    await mkdir(join(hostsDir, registry.host), { recursive: true })
    await writeFile(join(hostsDir, registry.host, 'hosts.toml'), toml)
    await registry.settled()
    registry.clearRequests()
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await stopAll([containerd, sidecar, registry])
    await rm(work, { recursive: true, force: true })
  })

  it("ctr reads it and pulls through the sidecar: every upstream request is the sidecar's; a second pull is all hits", async () => {
    const s0 = await sidecar.stats()
    await containerd.ctrPull(ref, { hostsDir })
    assert.deepEqual(await containerd.images(), [ref])
    await registry.settled()
    for (const r of registry.requests()) assert.match(r.userAgent ?? '', /^p2p-cache\//, `not from the sidecar: ${JSON.stringify(r)}`)
    const s1 = await sidecar.stats()
    assert.equal((s1.stores ?? 0) - (s0.stores ?? 0), image.allBlobDigests.length, 'manifest, config and layers stored')

    await containerd.purge()
    registry.clearRequests()
    const before = await sidecar.stats()
    await containerd.ctrPull(ref, { hostsDir })
    const after = await sidecar.stats()
    assert.ok((after.hits ?? 0) - (before.hits ?? 0) >= image.allBlobDigests.length, `hits grew: ${JSON.stringify({ before, after })}`)
    await registry.settled()
    assert.equal(registry.count({ kind: 'blob' }), 0)
  })

  it('check-mirror.sh passes against the ready sidecar and prints its counters', async () => {
    const r = await checkMirror()
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      r.stdout,
      new RegExp(
        `^check-mirror: OK: ${sidecar.url} serves ${ref} for containerd \\(X-Cache: \\w+\\); hits=\\d+ misses=\\d+ peer_hits=\\d+ upstream_hits=\\d+\\n$`
      )
    )
  })

  it('check-mirror.sh fails loudly when hosts.toml is missing or does not name the sidecar', async () => {
    const none = await checkMirror({ CERTS_DIR: join(work, 'nowhere') })
    assert.equal(none.code, 1)
    assert.match(none.stderr, /^check-mirror: FAIL: .*hosts\.toml does not exist, so containerd does not use the sidecar/)
    const other = await checkMirror({ P2P_CACHE_URL: sidecar.url.replace('127.0.0.1', 'localhost') })
    assert.equal(other.code, 1)
    assert.match(other.stderr, /has no \[host\.".*"\] section/)
  })

  it('check-mirror.sh fails loudly when the sidecar refuses the registry (not in CACHE_REGISTRY_UPSTREAMS)', async () => {
    // Docker Hub's hosts.toml as shipped, but this sidecar only knows the local registry: the
    // sidecar answers 400 before asking anyone, and containerd would quietly use `server`.
    await mkdir(join(hostsDir, 'docker.io'), { recursive: true })
    await writeFile(
      join(hostsDir, 'docker.io', 'hosts.toml'),
      (await readExample('containerd', 'hosts.toml')).replace(EXAMPLE_MIRROR, `[host."${sidecar.url}"]`)
    )
    const r = await run(examplePath('containerd', 'check-mirror.sh'), ['alpine:3.20'], {
      env: { PATH: process.env.PATH, P2P_CACHE_URL: sidecar.url, CERTS_DIR: hostsDir },
      timeoutMs: 30_000
    })
    assert.equal(r.code, 1)
    assert.match(
      r.stderr,
      /\/v2\/library\/alpine\/manifests\/3\.20\?ns=docker\.io answered 400, so containerd falls back to docker\.io for alpine:3\.20: .*unknown registry namespace ns=docker\.io/
    )
  })

  it('with the sidecar stopped, containerd still pulls (silently, from `server`) and check-mirror.sh fails loudly', async () => {
    await sidecar.stop()
    try {
      await containerd.purge()
      registry.clearRequests()
      await containerd.ctrPull(ref, { hostsDir })
      await registry.settled()
      const direct = registry.requests().filter(r => !(r.userAgent ?? '').startsWith('p2p-cache/'))
      assert.ok(direct.length > 0, 'the pull bypassed the cache, with no error')

      const r = await checkMirror()
      assert.equal(r.code, 1)
      assert.equal(r.stdout, '')
      assert.match(
        r.stderr,
        new RegExp(
          `^check-mirror: FAIL: the p2p-cache sidecar at ${sidecar.url} is not ready \\(GET /readyz: no answer\\), so containerd pulls straight from ${registry.host}\\.`
        )
      )
    } finally {
      await sidecar.restart()
    }
  })
})
