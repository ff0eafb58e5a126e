import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage } from '../fixtures/oci-image.js'
import { pushLayout, pullToLayout } from '../fixtures/skopeo.js'
import { runCli as cli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { freePort } from '../fixtures/ports.js'

describe('CLI: stats and gc', function () {
  this.timeout(60_000)
  let work: string
  let registry: Registry
  let sidecar: SidecarProcess

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-cli-'))
    registry = await startRegistry()
    await buildImage(join(work, 'img'), { tag: 'v1', layers: 3, layerSize: 400_000 })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'cli/img')
    // Bound of 1 MB with no age gate: gc has something to prune once the image is cached.
    sidecar = await startSidecar({
      CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
      CACHE_MAX_SIZE: '2MB',
      CACHE_EVICT_MIN_AGE: '0s',
      CACHE_EVICT_HIGH_WATERMARK: '0.99',
      CACHE_EVICT_LOW_WATERMARK: '0.2'
    })
    await pullToLayout(sidecar.host, 'cli/img', 'v1', join(work, 'out'))
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it("stats prints the running sidecar's counters for a person, and the raw JSON with --json", async () => {
    const text = await cli(['stats', '--url', sidecar.url], {})
    assert.equal(text.code, 0, text.stderr)
    const json = await cli(['stats', '--json'], { CACHE_HTTP_ADDR: sidecar.host })
    assert.equal(json.code, 0, json.stderr)
    const raw = JSON.parse(json.stdout) as Record<string, number>
    assert.ok((raw.stores ?? 0) >= 5)
    // The JSON is the server's, untouched.
    assert.deepEqual(Object.keys(raw).sort(), Object.keys(await sidecar.stats()).sort())
    // Sections in order, sizes with units, the hit rate in percent next to its counts.
    const titles = text.stdout.split('\n').filter(l => /^[A-Z]/.test(l))
    assert.deepEqual(titles, ['Store', 'Registry', 'Peers', 'Proxy', 'Actions cache', 'Bucket (S3)', 'API', 'HTTP'])
    assert.match(text.stdout, /^p2p-cache at http:\/\/127\.0\.0\.1:\d+\n\nStore\n {2}size +\d+(\.\d)? (B|KiB|MiB)\n {2}stored +\d+ blobs\n/)
    assert.match(text.stdout, /\n {2}hit rate +\d+\.\d%  \(\d+ hits?, \d+ miss(es)?\)\n/)
    assert.match(text.stdout, /\n {2}misses from upstream +\d+ {2}\(\d+(\.\d)? (B|KiB|MiB)\)\n/)
    assert.match(text.stdout, /\n {2}connected +0\n/)
    assert.doesNotMatch(text.stdout, /Other|_/, 'every field has a label')
  })

  it('stats says clearly when no sidecar runs', async () => {
    const res = await cli(['stats', '--url', `http://127.0.0.1:${await freePort()}`], {})
    assert.equal(res.code, 2)
    assert.match(res.stderr, /^p2p-cache: cannot reach a sidecar at .*is `p2p-cache serve` running/)
  })

  it('gc prunes through the running sidecar', async () => {
    const before = (await sidecar.stats()).current_size ?? 0
    const res = await cli(['gc', '--url', sidecar.url], {})
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^gc via sidecar at .*: removed [1-9]\d* blobs/)
    assert.ok(((await sidecar.stats()).current_size ?? 0) < before)
  })

  it('gc works on the data dir when no sidecar runs', async () => {
    await pullToLayout(sidecar.host, 'cli/img', 'v1', join(work, 'out2'))
    await sidecar.stop()
    const res = await cli([
      'gc',
      '--max-size',
      '1MB',
      '--evict-min-age',
      '0s',
      '--evict-low-watermark',
      '0.01',
      '--evict-high-watermark',
      '0.5'
    ], {
      CACHE_DIR: sidecar.env.CACHE_DIR,
      CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}`
    })
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^gc on .*: removed [1-9]\d* blobs, store now \d+ B\n$/, 'pruned below the 10 kB low watermark')
    await sidecar.restart()
  })
})

describe('CLI: stats formatting', () => {
  it("rate limits: the API fleet and anonymous buckets by name, client tokens summed up (their labels are hashes); Docker Hub's pull limit per registry upstream", async () => {
    const { Stats } = await import('../../src/metrics/stats.js')
    const { formatStats } = await import('../../src/cli/stats-format.js')
    const stats = new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false })
    stats.setApiRateLimit('github', 'fleet', 4990)
    stats.setApiRateLimit('github', 'anon', 58)
    stats.setApiRateLimit('github', '3f9a0c1d2e4b', 4998)
    stats.setApiRateLimit('github', '0a1b2c3d4e5f', 4997)
    const text = formatStats('http://127.0.0.1:9080', stats.snapshot())
    assert.match(text, /\n {2}rate limit left +github: fleet 4,990, anon 58, 2 client tokens \(lowest 4,997\)\n/)
    assert.match(text, /\n {2}upstream rate limit left +–\n/)
    stats.setRegistryRateLimit('docker.io', { remaining: 76, limit: 100, windowS: 21600 })
    assert.match(formatStats('http://127.0.0.1:9080', stats.snapshot()), /\n {2}upstream rate limit left +docker\.io 76 of 100 per 6 h\n/)
  })

  it('API rate limits keep the 16 most recent credentials per upstream (a new token every job)', async () => {
    const { Stats } = await import('../../src/metrics/stats.js')
    const stats = new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false })
    for (let i = 0; i < 40; i++) stats.setApiRateLimit('github', `job${i}`, 1000 - i)
    const github = stats.snapshot().api_ratelimit_remaining.github ?? {}
    assert.equal(Object.keys(github).length, 16)
    assert.equal(github.job39, 961)
    const exported = await stats.registry.getSingleMetricAsString('p2p_cache_api_ratelimit_remaining')
    assert.equal(exported.split('\n').filter(l => l.startsWith('p2p_cache_api_ratelimit_remaining{')).length, 16)
  })
})
