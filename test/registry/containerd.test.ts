import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, buildMultiArchImage, randomLayer, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { startContainerd, writeHostsToml, type Containerd } from '../fixtures/containerd.js'
import { freePort } from '../fixtures/ports.js'

/** Blobs containerd fetches with GET /blobs/ for one platform: config and layers. */
function platformBlobs (image: ImageDescription, architecture: string): string[] {
  const m = image.manifests.find(x => x.architecture === architecture)
  assert.ok(m, `no ${architecture} manifest`)
  return [m.configDigest, ...m.layers.map(l => l.digest)]
}

describe('containerd (ctr) pulls through the sidecar as its hosts.toml mirror', function () {
  this.timeout(60_000)
  let work: string
  let hostsDir: string
  let registry: Registry
  let sidecar: SidecarProcess
  let containerd: Containerd
  let app: ImageDescription
  let multi: ImageDescription
  let appRef: string
  let multiRef: string

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-containerd-'))
    hostsDir = join(work, 'hosts')
    const [reg, ctd] = await Promise.all([startRegistry(), startContainerd()])
    registry = reg
    containerd = ctd
    app = await buildImage(join(work, 'layout'), { tag: 'v1', baseLayers: [randomLayer(1024 * 1024)], layers: 2 })
    multi = await buildMultiArchImage(join(work, 'layout'), {
      tag: 'multi',
      architectures: ['amd64', 'arm64'],
      layers: 1,
      layerSize: 64 * 1024
    })
    await pushLayout(join(work, 'layout'), 'v1', registry.host, 'team/app')
    await pushLayout(join(work, 'layout'), 'multi', registry.host, 'team/multi')
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })
    // The registry's own address is never used by containerd: its `server` is a closed port,
    // so a pull can only succeed through the mirror.
    const deadPort = await freePort()
    await writeHostsToml(hostsDir, registry.host, sidecar.url, {
      server: `http://127.0.0.1:${deadPort}`,
      capabilities: ['pull', 'resolve']
    })
    appRef = `${registry.host}/team/app:v1`
    multiRef = `${registry.host}/team/multi:multi`
    await registry.settled()
    registry.clearRequests()
  })

  after(async () => {
    const results = await Promise.allSettled([containerd?.destroy(), sidecar?.destroy(), registry?.destroy()])
    await rm(work, { recursive: true, force: true })
    for (const r of results) if (r.status === 'rejected') throw r.reason
  })

  /** Every request the registry saw came from the sidecar, with ?ns= stripped. */
  function assertAllFromSidecar (): void {
    for (const r of registry.requests()) {
      assert.match(r.userAgent ?? '', /^p2p-cache\//, `request not made by the sidecar: ${JSON.stringify(r)}`)
      assert.ok(!r.path.includes('ns='), `ns leaked upstream: ${r.path}`)
    }
  }

  it('cold pull succeeds through the sidecar; the registry serves each blob once', async () => {
    const s0 = await sidecar.stats()
    await containerd.ctrPull(appRef, { hostsDir })
    assert.deepEqual(await containerd.images(), [appRef])
    const content = new Set(await containerd.contentDigests())
    for (const d of app.allBlobDigests) assert.ok(content.has(d), `content store lacks ${d}`)

    await registry.settled()
    assertAllFromSidecar()
    for (const d of platformBlobs(app, 'amd64')) {
      assert.equal(registry.count({ method: 'GET', pathIncludes: `/blobs/${d}` }), 1, `one upstream GET of ${d}`)
    }
    assert.equal(registry.count({ method: 'GET', kind: 'blob' }), platformBlobs(app, 'amd64').length)
    assert.equal(registry.count({ method: 'GET', pathIncludes: `/manifests/${app.manifestDigest}` }), 1)
    assert.equal(registry.count({ method: 'HEAD', pathIncludes: '/v2/team/app/manifests/v1' }), 1)

    const s1 = await sidecar.stats()
    // manifest + config + 3 layers were fetched and stored
    assert.equal((s1.stores ?? 0) - (s0.stores ?? 0), app.allBlobDigests.length)
    assert.ok((s1.misses ?? 0) - (s0.misses ?? 0) >= app.allBlobDigests.length)
    assert.ok((s1.bytes_from_upstream ?? 0) >= app.layers.reduce((n, l) => n + l.size, 0))
  })

  it('after purge(), a second pull is served warm by the sidecar: no blob GET upstream', async () => {
    await containerd.purge()
    assert.deepEqual(await containerd.contentDigests(), [])
    registry.clearRequests()
    const s0 = await sidecar.stats()
    const { stderr } = await containerd.ctrPull(appRef, { hostsDir, httpDump: true })
    // What ctr itself saw (--http-dump): every request went to the sidecar with ?ns=, every
    // answer was a local hit.
    const sent = [...stderr.matchAll(/(GET|HEAD) (\/v2\/\S+) HTTP\/1\.1"/g)].map(m => `${m[1] ?? ''} ${m[2] ?? ''}`)
    const cache = [...stderr.matchAll(/msg="X-Cache: (\w+)"/g)].map(m => m[1])
    const hosts = new Set([...stderr.matchAll(/msg="Host: (\S+)"/g)].map(m => m[1]))
    assert.ok(sent.length >= app.allBlobDigests.length, sent.join('\n'))
    for (const r of sent) assert.ok(r.endsWith(`?ns=${encodeURIComponent(registry.host)}`), r)
    assert.deepEqual(hosts, new Set([sidecar.host]))
    assert.equal(cache.length, sent.length)
    // Every answer is a HIT: the HEAD by tag too (its manifest is stored), though the tag itself
    // is still resolved upstream (below).
    assert.deepEqual(sent.map((r, i) => `${r} ${cache[i] ?? ''}`), sent.map(r => `${r} HIT`))
    const content = new Set(await containerd.contentDigests())
    for (const d of app.allBlobDigests) assert.ok(content.has(d), `content store lacks ${d}`)

    await registry.settled()
    assertAllFromSidecar()
    assert.equal(registry.count({ kind: 'blob' }), 0, JSON.stringify(registry.requests()))
    assert.equal(registry.count({ kind: 'manifest', method: 'GET' }), 0)
    // Only the tag is resolved upstream.
    assert.equal(registry.count({ method: 'HEAD', pathIncludes: '/v2/team/app/manifests/v1' }), 1)
    assert.equal(registry.requests().length, 1, JSON.stringify(registry.requests()))

    const s1 = await sidecar.stats()
    assert.equal(s1.stores, s0.stores)
    assert.equal(s1.misses, s0.misses)
    assert.ok((s1.hits ?? 0) - (s0.hits ?? 0) >= app.allBlobDigests.length)
    assert.equal(s1.bytes_from_upstream, s0.bytes_from_upstream)
  })

  it('pulls one platform of a multi-arch index with --platform linux/arm64', async () => {
    registry.clearRequests()
    const s0 = await sidecar.stats()
    await containerd.ctrPull(multiRef, { hostsDir, platform: 'linux/arm64' })
    assert.ok((await containerd.images()).includes(multiRef))
    const arm64 = multi.manifests.find(m => m.architecture === 'arm64')
    const amd64 = multi.manifests.find(m => m.architecture === 'amd64')
    assert.ok(arm64 !== undefined && amd64 !== undefined)
    const content = new Set(await containerd.contentDigests())
    for (const d of [multi.manifestDigest, arm64.digest, ...platformBlobs(multi, 'arm64')]) {
      assert.ok(content.has(d), `content store lacks ${d}`)
    }
    for (const l of amd64.layers) assert.ok(!content.has(l.digest), `amd64 layer ${l.digest} was pulled`)

    await registry.settled()
    assertAllFromSidecar()
    assert.equal(registry.count({ method: 'HEAD', pathIncludes: '/v2/team/multi/manifests/multi' }), 1)
    assert.equal(registry.count({ method: 'GET', pathIncludes: `/manifests/${multi.manifestDigest}` }), 1)
    assert.equal(registry.count({ method: 'GET', pathIncludes: `/manifests/${arm64.digest}` }), 1)
    assert.equal(registry.count({ pathIncludes: amd64.digest }), 0)
    for (const d of platformBlobs(multi, 'arm64')) {
      assert.equal(registry.count({ method: 'GET', pathIncludes: `/blobs/${d}` }), 1, `one upstream GET of ${d}`)
    }
    assert.equal(registry.count({ method: 'GET', kind: 'blob' }), platformBlobs(multi, 'arm64').length)
    const s1 = await sidecar.stats()
    // index + arm64 manifest + config + layer
    assert.equal((s1.stores ?? 0) - (s0.stores ?? 0), 2 + platformBlobs(multi, 'arm64').length)

    // The index is served from the sidecar with its own media type.
    const res = await fetch(`${sidecar.url}/v2/team/multi/manifests/${multi.manifestDigest}?ns=${encodeURIComponent(registry.host)}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), multi.mediaType)
    assert.equal(res.headers.get('x-cache'), 'HIT')
    await res.arrayBuffer()
  })

  /** `p2p-cache diagnose --json` against this sidecar and `hosts`: its client.containerd finding. */
  const containerdFinding = async (hosts: string): Promise<{ verdict: string, summary: string, fix?: string }> => {
    const r = await runCli(
      ['diagnose', '--json', '--http', sidecar.url, '--containerd-hosts', hosts, '--docker-host', `unix://${join(work, 'no-docker.sock')}`],
      {
        HOME: work,
        CACHE_DIR: join(work, 'diagnose'),
        CACHE_ENABLE_P2P: 'false',
        CACHE_HTTP_ADDR: sidecar.host,
        CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
        CACHE_API_UPSTREAMS: `github=${registry.url}`
      },
      { timeoutMs: 60_000 }
    )
    const report = JSON.parse(r.stdout) as { findings: Array<{ check: string, verdict: string, summary: string, fix?: string }> }
    const finding = report.findings.find(f => f.check === 'client.containerd')
    assert.ok(finding, r.stdout.slice(0, 2000))
    return finding
  }

  it('diagnose: containerd mirrors the registry through the sidecar and has reached it; a hosts dir without it is a warning with the fix', async () => {
    const f = await containerdFinding(hostsDir)
    assert.equal(f.verdict, 'ok', f.summary)
    assert.match(
      f.summary,
      new RegExp(
        `^containerd mirrors ${registry.host.replace(/\./g, '\\.')} through the sidecar; its last request reached the sidecar \\d+ s ago`
      )
    )
    const empty = join(work, 'hosts-empty')
    await mkdir(join(empty, 'docker.io'), { recursive: true })
    const none = await containerdFinding(empty)
    assert.equal(none.verdict, 'warn')
    assert.match(none.summary, /^no hosts\.toml under .* names the sidecar/)
    assert.match(none.fix ?? '', /hosts\.toml with \[host\."http:\/\/127\.0\.0\.1:\d+"\] capabilities = \["pull", "resolve"\]/)
  })

  it('the pull fails when the sidecar is down (proof the mirror is the only path)', async () => {
    await containerd.purge()
    await sidecar.stop()
    try {
      await assert.rejects(containerd.ctrPull(appRef, { hostsDir, timeoutMs: 30_000 }))
    } finally {
      await sidecar.restart()
    }
  })
})
