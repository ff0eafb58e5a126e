import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, randomLayer, type ImageDescription, type LayerBlob } from '../fixtures/oci-image.js'
import { pushLayout, sha256File } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { waitFor } from '../fixtures/wait.js'

/** Every file under blobs/ must hash to its name, and tmp/ must be empty. */
async function assertConsistent (dataDir: string): Promise<number> {
  assert.deepEqual(await readdir(join(dataDir, 'tmp')), [], 'tmp/ emptied at start-up')
  let files = 0
  const root = join(dataDir, 'blobs', 'sha256')
  for (const prefix of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, prefix))) {
      assert.equal(await sha256File(join(root, prefix, name)), `sha256:${name}`, `blob file ${name} verifies`)
      files++
    }
  }
  return files
}

async function fetchAndHash (url: string): Promise<{ status: number, digest: string, cache: string | null }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) })
  const hash = createHash('sha256')
  for await (const chunk of res.body ?? []) hash.update(chunk as Uint8Array)
  return { status: res.status, digest: `sha256:${hash.digest('hex')}`, cache: res.headers.get('x-cache') }
}

describe('store survives crashes and disk corruption (sidecar process)', function () {
  this.timeout(120_000)
  let work: string
  let registry: Registry
  let sidecar: SidecarProcess
  let image: ImageDescription
  let big: LayerBlob

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-crash-'))
    registry = await startRegistry()
    big = randomLayer(48 * 1024 * 1024)
    image = await buildImage(join(work, 'img'), { tag: 'v1', baseLayers: [big], layers: 1 })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'crash/img')
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it('SIGKILL in the middle of a blob write leaves a consistent store (3 times)', async () => {
    const dataDir = sidecar.env.CACHE_DIR ?? ''
    const url = `${sidecar.url}/v2/crash/img/blobs/${big.digest}`
    for (let round = 0; round < 3; round++) {
      const client = fetch(url).then(async res => {
        for await (const _ of res.body ?? []) { /* drain */ }
      }).catch(() => {})
      // Kill once the blob is partly written to tmp/: that is the state a crash must survive.
      await waitFor(async () => {
        for (const name of await readdir(join(dataDir, 'tmp'))) {
          const info = await stat(join(dataDir, 'tmp', name)).catch(() => undefined)
          if (info !== undefined && info.size > 0 && info.size < big.size) return true
        }
        return false
      }, { timeoutMs: 20_000, intervalMs: 2, what: 'a partly written blob in tmp/' })
      await sidecar.kill()
      await client
      await sidecar.restart()
      await assertConsistent(dataDir)
      const stats = await sidecar.stats()
      assert.equal(stats.current_size, 0, `round ${round}: nothing half-written was indexed`)
    }
    const got = await fetchAndHash(url)
    assert.equal(got.status, 200)
    assert.equal(got.digest, big.digest)
    await sidecar.restart()
    assert.equal(await assertConsistent(dataDir), 1)
    const warm = await fetchAndHash(url)
    assert.equal(warm.cache, 'HIT')
    assert.equal(warm.digest, big.digest)
  })

  it('a blob corrupted on disk is detected, re-fetched and never served', async () => {
    const dataDir = sidecar.env.CACHE_DIR ?? ''
    const layer = image.layers[1]
    assert.ok(layer)
    const url = `${sidecar.url}/v2/crash/img/blobs/${layer.digest}`
    assert.equal((await fetchAndHash(url)).digest, layer.digest)
    // The response ends when the digest verifies; the commit (rename, index) follows it.
    await waitFor(async () => (await fetch(url, { method: 'HEAD' })).headers.get('x-cache') === 'HIT', {
      timeoutMs: 5_000,
      what: 'blob committed'
    })
    await registry.settled()
    const before = registry.count({ method: 'GET', pathIncludes: layer.digest })
    const hex = layer.digest.slice(7)
    const file = await open(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex), 'r+')
    await file.write(Buffer.from('garbage'), 0, 7, 10)
    await file.close()
    const errorsBefore = (await sidecar.stats()).errors ?? 0
    const got = await fetchAndHash(url)
    assert.equal(got.status, 200)
    assert.equal(got.digest, layer.digest)
    assert.equal(got.cache, 'MISS', 'served from upstream, not from the corrupted file')
    // The registry logs a request once its response is over, which may be after the client had
    // the last byte: wait for the line rather than read the count at once.
    await waitFor(async () => {
      await registry.settled()
      return registry.count({ method: 'GET', pathIncludes: layer.digest }) >= before + 1
    }, { timeoutMs: 10_000, what: 'the re-fetch in the registry log' })
    assert.equal(registry.count({ method: 'GET', pathIncludes: layer.digest }), before + 1)
    assert.ok(((await sidecar.stats()).errors ?? 0) > errorsBefore, 'corruption counted as an error')
    assert.equal((await fetchAndHash(url)).cache, 'HIT')
  })

  it('an upstream that sends wrong bytes gets the client response aborted and nothing committed', async () => {
    const liar = await buildImage(join(work, 'liar'), { tag: 'v1', layers: 1, layerSize: 512 * 1024 })
    await pushLayout(join(work, 'liar'), 'v1', registry.host, 'crash/liar')
    const layer = liar.layers[0]
    assert.ok(layer)
    // The real registry serves its storage files without re-hashing: corrupt one in place.
    const hex = layer.digest.slice(7)
    const stored = await open(join(registry.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), 'r+')
    await stored.write(Buffer.from('lies'), 0, 4, 100)
    await stored.close()
    const before = await sidecar.stats()
    const res = await fetch(`${sidecar.url}/v2/crash/liar/blobs/${layer.digest}`)
    assert.equal(res.status, 200, 'streaming started before the mismatch could be known')
    const received: Uint8Array[] = []
    await assert.rejects((async () => {
      for await (const chunk of res.body ?? []) received.push(chunk as Uint8Array)
    })())
    assert.ok(Buffer.concat(received).byteLength < layer.size, 'the client never got a complete (wrong) blob')
    await waitFor(async () => ((await sidecar.stats()).errors ?? 0) > (before.errors ?? 0), { timeoutMs: 10_000, what: 'error counted' })
    const after = await sidecar.stats()
    assert.equal(after.stores, before.stores, 'nothing committed')
    assert.equal(after.current_size, before.current_size)
    assert.equal(await assertConsistent(sidecar.env.CACHE_DIR ?? ''), 2)
  })
})
