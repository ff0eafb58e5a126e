import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, buildMultiArchImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { CLI, runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { freePort } from '../fixtures/ports.js'
import { dumpLogsIfFailed, p2pStats, startSwarmNode, stopAll, waitForPeers, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'
import { parseImageReference, parsePlatform, platformMatches, InvalidImageReferenceError } from '../../src/oci/image-ref.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/** This machine's architecture in OCI names (what warm picks from an index by default). */
const HOST_ARCH = process.arch === 'x64' ? 'amd64' : process.arch
const OTHER_ARCH = HOST_ARCH === 'amd64' ? 'arm64' : 'amd64'

/** The per-item lines warm prints without a terminal, by digest: `<image>  <kind> <digest12>  <size>  <X-Cache …>`. */
function itemLines (stdout: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    const m = /^\S+\s+(?:index|manifest|config|layer)\s+sha256:([0-9a-f]{12})\s/.exec(line)
    if (m?.[1] !== undefined) out.set(m[1], line)
  }
  return out
}

const short = (digest: string): string => digest.slice('sha256:'.length, 'sha256:'.length + 12)

function blobsOf (image: ImageDescription, arch?: string): string[] {
  return image.manifests.filter(m => arch === undefined || m.architecture === arch).flatMap(
    m => [m.configDigest, ...m.layers.map(l => l.digest)]
  )
}

describe('CLI: warm', function () {
  this.timeout(60_000)
  let work: string
  let registry: Registry
  let sidecar: SidecarProcess
  const images: Record<string, ImageDescription> = {}

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-warm-'))
    registry = await startRegistry()
    const builds: Array<[string, Promise<ImageDescription>]> = [
      ['single', buildImage(join(work, 'single'), { tag: 'v1', layers: 3, layerSize: 200_000 })],
      [
        'multi',
        buildMultiArchImage(join(work, 'multi'), { tag: 'v1', layers: 2, layerSize: 100_000, architectures: [HOST_ARCH, OTHER_ARCH] })
      ],
      ['digest', buildImage(join(work, 'digest'), { tag: 'v1', layers: 1 })],
      ['good', buildImage(join(work, 'good'), { tag: 'v1', layers: 2 })],
      ['tty', buildImage(join(work, 'tty'), { tag: 'v1', layers: 2, layerSize: 300_000 })]
    ]
    for (const [name, built] of builds) {
      images[name] = await built
      await pushLayout(join(work, name), 'v1', registry.host, `warm/${name}`)
    }
    await registry.settled()
    registry.clearRequests() // the pushes are not the sidecar's requests
    // The registry is the only (so the first) upstream: references with and without its host both reach it.
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  const warm = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> =>
    await runCli(['warm', '--url', sidecar.url, ...args], {})

  it('warms a single-platform image: every blob MISS, then all HIT; the sidecar stored them', async () => {
    const image = images.single!
    const blobs = blobsOf(image)
    const first = await warm('warm/single:v1')
    assert.equal(first.code, 0, first.stderr)
    const lines = itemLines(first.stdout)
    for (const d of blobs) assert.match(lines.get(short(d)) ?? `no line for ${d}`, /MISS upstream /, first.stdout)
    assert.match(
      first.stdout,
      /^warm\/single:v1 \(linux\/amd64\): 4 blobs, [\d.]+ KiB — 0 local, 0 from peers, 4 from upstream — [\d.]+ s$/m
    )
    await registry.settled()
    const upstreamBlobGets = registry.count({ method: 'GET', kind: 'blob', pathIncludes: 'warm/single' })
    assert.equal(upstreamBlobGets, blobs.length, 'each blob fetched upstream once')

    const second = await warm('warm/single:v1')
    assert.equal(second.code, 0, second.stderr)
    const again = itemLines(second.stdout)
    for (const d of blobs) assert.match(again.get(short(d)) ?? `no line for ${d}`, /HIT local$/, second.stdout)
    assert.match(second.stdout, /^warm\/single:v1 \(linux\/amd64\): 4 blobs, .* — 4 local, 0 from peers, 0 from upstream — /m)
    await registry.settled()
    assert.equal(
      registry.count({ method: 'GET', kind: 'blob', pathIncludes: 'warm/single' }),
      upstreamBlobGets,
      'no blob fetched upstream again'
    )

    const stats = await runCli(['stats', '--json', '--url', sidecar.url], {})
    assert.equal(stats.code, 0, stats.stderr)
    assert.ok((JSON.parse(stats.stdout) as { stores: number }).stores >= blobs.length + 1, 'manifest, config and layers stored')
  })

  it("warms only this machine's platform of a multi-arch image by default, every platform with --all-platforms", async () => {
    const image = images.multi!
    const mine = blobsOf(image, HOST_ARCH)
    const other = blobsOf(image, OTHER_ARCH)
    const host = await warm(`${registry.host}/warm/multi:v1`)
    assert.equal(host.code, 0, host.stderr)
    const lines = itemLines(host.stdout)
    for (const d of mine) assert.match(lines.get(short(d)) ?? `no line for ${d}`, /MISS/)
    for (const d of other) assert.equal(lines.get(short(d)), undefined, `${OTHER_ARCH} blob ${d} was warmed`)
    assert.match(lines.get(short(image.manifestDigest)) ?? 'no index line', /index/)
    assert.match(host.stdout, new RegExp(`^${registry.host}/warm/multi:v1 \\(linux/${HOST_ARCH}\\): 3 blobs, `, 'm'))
    await registry.settled()
    for (const d of other) assert.equal(registry.count({ method: 'GET', pathIncludes: d }), 0, `${OTHER_ARCH} blob asked upstream`)

    const all = await warm('--all-platforms', `${registry.host}/warm/multi:v1`)
    assert.equal(all.code, 0, all.stderr)
    const allLines = itemLines(all.stdout)
    for (const d of mine) assert.match(allLines.get(short(d)) ?? `no line for ${d}`, /HIT local/)
    for (const d of other) assert.match(allLines.get(short(d)) ?? `no line for ${d}`, /MISS upstream/)
    assert.match(
      all.stdout,
      new RegExp(`\\(linux/${HOST_ARCH}, linux/${OTHER_ARCH}\\): 6 blobs, .* — 3 local, 0 from peers, 3 from upstream`)
    )

    const none = await warm('--platform', 'linux/s390x', `${registry.host}/warm/multi:v1`)
    assert.equal(none.code, 1)
    assert.match(
      none.stderr,
      new RegExp(`has no linux/s390x image \\(it has: linux/${HOST_ARCH}, linux/${OTHER_ARCH}\\)\\n  hint: pass --platform`)
    )
  })

  it('warms by digest', async () => {
    const image = images.digest!
    const res = await warm(`${registry.host}/warm/digest@${image.manifestDigest}`)
    assert.equal(res.code, 0, res.stderr)
    const lines = itemLines(res.stdout)
    for (const d of blobsOf(image)) assert.match(lines.get(short(d)) ?? `no line for ${d}`, /MISS/)
    assert.match(res.stdout, /warm\/digest@sha256:[0-9a-f]{64} \(linux\/amd64\): 2 blobs/)
  })

  it('warms the good image when another fails, names the failure and exits 1', async () => {
    const image = images.good!
    const res = await warm(`${registry.host}/warm/good:v1`, `${registry.host}/warm/missing:v1`)
    assert.equal(res.code, 1, res.stderr)
    assert.match(
      res.stderr,
      /^p2p-cache: warm 127\.0\.0\.1:\d+\/warm\/missing:v1 failed: the sidecar answered 404 MANIFEST_UNKNOWN: .*\n {2}hint: check that warm\/missing:v1 exists on 127\.0\.0\.1:\d+/m
    )
    assert.match(res.stdout, /^127\.0\.0\.1:\d+\/warm\/good:v1 \(linux\/amd64\): 3 blobs, .* 3 from upstream/m)
    const again = await warm(`${registry.host}/warm/good:v1`)
    assert.equal(again.code, 0, again.stderr)
    const lines = itemLines(again.stdout)
    for (const d of blobsOf(image)) assert.match(lines.get(short(d)) ?? `no line for ${d}`, /HIT local/)
  })

  it('refuses a malformed reference with exit 2 and what is expected', async () => {
    for (const ref of ['Warm/Upper:v1', 'warm/x:bad!tag', 'warm/x@sha256:1234', '']) {
      const res = await warm(ref)
      assert.equal(res.code, 2, `${ref}: ${res.stderr}`)
      assert.match(res.stderr, /^p2p-cache: invalid image reference ".*": .*; expected \[HOST\[:PORT\]\/\]NAME\[:TAG\]\[@sha256:<64 hex>\]/)
    }
  })

  it('exits 2 when no sidecar answers', async () => {
    const res = await runCli(['warm', '--url', `http://127.0.0.1:${await freePort()}`, 'alpine:3.20'], {})
    assert.equal(res.code, 2)
    assert.match(res.stderr, /^p2p-cache: cannot reach a sidecar at http:\/\/127\.0\.0\.1:\d+ .*is `p2p-cache serve` running/)
    // The default URL comes from CACHE_HTTP_ADDR.
    const env = await runCli(['warm', 'alpine:3.20'], { CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}` })
    assert.equal(env.code, 2)
    assert.match(env.stderr, /cannot reach a sidecar/)
  })

  it('names an unknown registry host with the CACHE_REGISTRY_UPSTREAMS hint (exit 1)', async () => {
    const res = await warm('registry.invalid:5000/team/app:1.0')
    assert.equal(res.code, 1)
    assert.match(res.stderr, /failed: the sidecar answered 400 UNSUPPORTED: unknown registry namespace ns=registry\.invalid:5000/)
    assert.match(
      res.stderr,
      /hint: add registry\.invalid:5000 to the sidecar's CACHE_REGISTRY_UPSTREAMS \(e\.g\. registry\.invalid:5000=https:\/\/registry\.invalid:5000\) and restart it\n/
    )
    // Never "leave the host out": that would pull the same path from the first upstream (Docker Hub).
    assert.doesNotMatch(res.stderr, /leave the host out|first upstream/)
  })

  it('draws a progress bar on a terminal', async function () {
    const script = await new Promise<boolean>(resolve => {
      execFile('script', ['--version'], err => {
        resolve(err === null)
      })
    })
    if (!script) {
      skipUnlessCi(this, 'util-linux `script` (runs the CLI under a pseudo-terminal) is not installed')
    }
    const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`
    const cmd = [process.execPath, CLI, 'warm', '--url', sidecar.url, 'warm/tty:v1'].map(quote).join(' ')
    const res = await new Promise<{ code: number, out: string }>(resolve => {
      execFile(
        'script',
        ['-qec', cmd, '/dev/null'],
        { env: { PATH: process.env.PATH }, timeout: 30_000, killSignal: 'SIGKILL' },
        (err, stdout) => {
          resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: stdout })
        }
      )
    })
    assert.equal(res.code, 0, res.out)
    assert.match(res.out, /warming \[[█░]+\] 100% \| [\d.]+ KiB \/ [\d.]+ KiB/, 'the bar, complete')
    assert.match(res.out, /warm\/tty:v1 \(linux\/amd64\): 3 blobs, .* 3 from upstream/)
    assert.doesNotMatch(res.out, /MISS upstream/, 'no per-blob lines on a terminal')
  })
})

describe('CLI: warm from a peer', function () {
  this.timeout(60_000)
  let work: string
  let registry: Registry
  let a: SwarmNode
  let b: SwarmNode
  let image: ImageDescription

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-warm-peer-'))
    registry = await startRegistry()
    image = await buildImage(join(work, 'img'), { tag: 'v1', layers: 2, layerSize: 150_000 })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'warm/peer')
    const upstreams = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    a = await startSwarmNode(upstreams)
    b = await startSwarmNode({ ...upstreams, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr })
    await Promise.all([waitForPeers(a, 1), waitForPeers(b, 1)])
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { A: a, B: b })
  })

  after(async () => {
    try {
      await stopAll([a, b, registry])
    } finally {
      if (work !== undefined) await rm(work, { recursive: true, force: true })
    }
  })

  it('counts blobs another runner served as "from peers" (X-Cache PEER and its peer ID)', async () => {
    const ref = `${registry.host}/warm/peer@${image.manifestDigest}`
    const onA = await runCli(['warm', '--url', a.url, ref], {})
    assert.equal(onA.code, 0, onA.stderr)
    assert.match(onA.stdout, /: 3 blobs, .* — 0 local, 0 from peers, 3 from upstream — /)
    // Blobs are committed (then announced) after the response: wait for A's commits.
    const blobs = blobsOf(image)
    await waitFor(async () => (await p2pStats(a)).stores >= blobs.length + 1, { timeoutMs: 10_000, what: 'A to commit the image' })
    // With the upstream gone, only the peer can answer B.
    await registry.stop()
    const onB = await runCli(['warm', '--url', b.url, ref], {})
    assert.equal(onB.code, 0, onB.stderr)
    const lines = itemLines(onB.stdout)
    for (const d of blobs) assert.match(lines.get(short(d)) ?? `no line for ${d}`, new RegExp(`PEER ${a.peerId}$`))
    assert.match(onB.stdout, /: 3 blobs, .* — 0 local, 3 from peers, 0 from upstream — /)
  })
})

describe('warm: image references and platforms', () => {
  const D = `sha256:${'ab'.repeat(32)}`
  const cases: Array<[string, { host?: string, repository: string, tag?: string, digest?: string }]> = [
    ['alpine', { repository: 'alpine' }],
    ['alpine:3.20', { repository: 'alpine', tag: '3.20' }],
    ['library/alpine', { repository: 'library/alpine' }],
    ['ghcr.io/org/img:tag', { host: 'ghcr.io', repository: 'org/img', tag: 'tag' }],
    ['localhost:5000/x:y', { host: 'localhost:5000', repository: 'x', tag: 'y' }],
    ['localhost/x', { host: 'localhost', repository: 'x' }],
    ['127.0.0.1:5000/a/b', { host: '127.0.0.1:5000', repository: 'a/b' }],
    ['[::1]:5000/x:y', { host: '[::1]:5000', repository: 'x', tag: 'y' }],
    ['Index.Docker.IO/library/alpine', { host: 'docker.io', repository: 'library/alpine' }],
    [`name@${D}`, { repository: 'name', digest: D }],
    [`name:tag@${D}`, { repository: 'name', tag: 'tag', digest: D }]
  ]
  for (const [input, want] of cases) {
    it(`parses ${input}`, () => {
      const ref = parseImageReference(input)
      assert.deepEqual(
        { host: ref.host, repository: ref.repository, tag: ref.tag, digest: ref.digest },
        { host: undefined, tag: undefined, digest: undefined, ...want }
      )
    })
  }

  it('refuses malformed references, saying what is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /empty/],
      ['a b', /whitespace/],
      ['Alpine', /uppercase/],
      ['alpine:', /not a valid tag/],
      ['alpine:-x', /not a valid tag/],
      ['x@sha256:abc', /not a digest/],
      [`x@md5:${'a'.repeat(32)}`, /only sha256/],
      ['ghcr.io/', /repository name is missing/],
      ['bad_host.-x.io/a', /not a registry host/],
      ['a//b', /not a repository name/]
    ]
    for (const [input, reason] of bad) {
      assert.throws(
        () => parseImageReference(input),
        (err: unknown) => err instanceof InvalidImageReferenceError && reason.test(err.message),
        input
      )
    }
  })

  it('matches platforms as containerd does (arm64 is v8 when unnamed)', () => {
    assert.ok(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' }))
    assert.ok(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' }))
    assert.ok(!platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' }))
    assert.ok(!platformMatches(parsePlatform('linux/amd64'), { os: 'windows', architecture: 'amd64' }))
    assert.throws(() => parsePlatform('amd64'), /expected OS\/ARCH\[\/VARIANT\]/)
  })
})
