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
      CACHE_MAX_SIZE: '2MB', CACHE_EVICT_MIN_AGE: '0s', CACHE_EVICT_HIGH_WATERMARK: '0.99', CACHE_EVICT_LOW_WATERMARK: '0.2'
    })
    await pullToLayout(sidecar.host, 'cli/img', 'v1', join(work, 'out'))
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it('stats prints the running sidecar\'s counters', async () => {
    const text = await cli(['stats', '--url', sidecar.url], {})
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /hit_rate/)
    assert.match(text.stdout, /current_size\s+\d/)
    const json = await cli(['stats', '--json'], { CACHE_HTTP_ADDR: sidecar.host })
    assert.equal(json.code, 0, json.stderr)
    assert.ok((JSON.parse(json.stdout) as { stores: number }).stores >= 5)
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
    const res = await cli(['gc', '--max-size', '1MB', '--evict-min-age', '0s', '--evict-low-watermark', '0.01', '--evict-high-watermark', '0.5'], {
      CACHE_DIR: sidecar.env.CACHE_DIR, CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}`
    })
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^gc on .*: removed [1-9]\d* blobs, store now \d+ B\n$/, "pruned below the 10 kB low watermark")
    await sidecar.restart()
  })
})
