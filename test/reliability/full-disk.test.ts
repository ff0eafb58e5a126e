import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readdir, rm, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, fetchBlob, pushBlob } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'
import { call, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'
import { skipUnlessCi } from '../fixtures/skip.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const REPO = 'team/full'
/** The store's filesystem: a tmpfs this small fills up during the tests' downloads. */
const FS_BYTES = 48 * MiB

interface Readyz {
  status: string
  store: { full: boolean, free_bytes: number | null }
}

async function readyz (sidecar: SidecarProcess): Promise<Readyz> {
  return await (await fetch(`${sidecar.url}/readyz`)).json() as Readyz
}

async function free (dir: string): Promise<number> {
  const fs = await statfs(dir)
  return fs.bavail * fs.bsize
}

/** Fills `dir`'s filesystem with file `name` until `leave` bytes are free; returns its path. */
async function fillUntil (dir: string, leave: number, name: string): Promise<string> {
  const path = join(dir, name)
  const file = await open(path, 'a')
  try {
    const block = Buffer.alloc(MiB)
    for (let n = 0; n < 1024; n++) {
      const room = await free(dir) - leave
      if (room <= 0) break
      await file.write(block, 0, Math.min(room, MiB))
    }
  } finally {
    await file.close()
  }
  return path
}

/**
 * Issue 16, point 2: the store on a small filesystem that fills during a download. The client
 * still gets its blob (streamed through, verified, not committed); nothing half-written is
 * indexed; hits keep being served; eviction makes room; /readyz and stats say the store is full;
 * the sidecar recovers when space returns. CACHE_MAX_SIZE is far above the filesystem's size:
 * the misconfiguration (or the shared disk) that makes this happen on real runners.
 */
describe('a full disk under the store', function () {
  this.timeout(120_000)
  let mountpoint: string
  let mounted = false
  let registry: Registry
  let gh: FakeGitHub
  let sidecar: SidecarProcess

  before(async function () {
    mountpoint = await mkdtemp(join(tmpdir(), 'p2p-cache-fullfs-'))
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES}`, 'p2p-cache-test', mountpoint])
      mounted = true
    } catch (err) {
      skipUnlessCi(
        this,
        `mounting a small tmpfs for the store needs root (${(err as Error).message.split('\n')[0] ?? ''}); nothing else tests a full disk`
      )
    }
    registry = await startRegistry()
    gh = await startFakeGitHub({ tokens: {} })
    sidecar = await startSidecar({
      CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
      CACHE_API_UPSTREAMS: `github=${gh.url}`,
      CACHE_DIR: join(mountpoint, 'data'),
      CACHE_MAX_SIZE: '10GiB'
    })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
    await gh?.destroy()
    if (mounted) await run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint]))
    await rm(mountpoint, { recursive: true, force: true })
  })

  const blobUrl = (digest: string): string => `${sidecar.url}/v2/${REPO}/blobs/${digest}`
  const tmpEntries = async (): Promise<string[]> => await readdir(join(mountpoint, 'data', 'tmp'))
  const xcache = async (digest: string): Promise<string | null> => (await fetch(blobUrl(digest), { method: 'HEAD' })).headers.get('x-cache')

  it('serves every blob while the filesystem fills, evicts to make room, says it is full, and recovers', async () => {
    const older = randomBytes(6 * MiB)
    const pinned = randomBytes(MiB)
    const fits = randomBytes(4 * MiB)
    const large = randomBytes(20 * MiB)
    const [olderDigest, pinnedDigest, fitsDigest, largeDigest] = await Promise.all(
      [older, pinned, fits, large].map(async data => await pushBlob(registry.url, REPO, data))
    )

    // Two cached blobs; one pinned (PUT /api/cache/pins/...), so eviction may not take it.
    for (const d of [olderDigest!, pinnedDigest!]) {
      assert.equal((await fetchBlob(blobUrl(d))).digest, d)
      await waitFor(async () => await xcache(d) === 'HIT', { timeoutMs: 10_000, what: `${d} committed` })
    }
    assert.equal((await fetch(`${sidecar.url}/api/cache/pins/${pinnedDigest}`, { method: 'PUT' })).status, 200)
    assert.equal((await readyz(sidecar)).store.full, false)

    // Something else fills the disk: 2 MiB left.
    const filler = await fillUntil(mountpoint, 2 * MiB, 'filler')
    const before = await sidecar.stats()

    // 4 MiB does not fit in 2: the unpinned cached blob is evicted for it, and it is stored.
    const got = await fetchBlob(blobUrl(fitsDigest!))
    assert.equal(got.status, 200)
    assert.equal(got.digest, fitsDigest)
    await waitFor(async () => await xcache(fitsDigest!) === 'HIT', {
      timeoutMs: 10_000,
      what: 'the 4 MiB blob committed after eviction made room'
    })
    assert.equal(await xcache(olderDigest!), 'MISS', 'the least recently used unpinned blob made room')
    const afterRoom = await sidecar.stats()
    assert.ok(afterRoom.evictions! > before.evictions!, 'counted as an eviction')
    assert.equal((await fetch(`${sidecar.url}/api/cache/pins/${fitsDigest!}`, { method: 'PUT' })).status, 200)

    // 20 MiB can't fit, and every cached blob is pinned now: streamed through, verified, not stored.
    const passed = await fetchBlob(blobUrl(largeDigest!))
    assert.equal(passed.status, 200)
    assert.equal(passed.length, large.length)
    assert.equal(passed.digest, largeDigest, 'the client got the whole verified blob')
    const full = await sidecar.stats()
    assert.ok(full.store_full_events! > afterRoom.store_full_events!, 'store_full_events counted')
    assert.ok(full.bytes_passed_through! > 0, 'bytes_passed_through counted')
    assert.equal(full.store_full as unknown, true, 'stats say the store is full')
    const ready = await readyz(sidecar)
    assert.equal(ready.status, 'ready', 'a full store still serves: ready')
    assert.equal(ready.store.full, true, '/readyz says the store is full')
    assert.equal(await xcache(largeDigest!), 'MISS', 'nothing half-written was indexed')
    await waitFor(async () => (await tmpEntries()).length === 0, { timeoutMs: 10_000, what: 'tmp/ emptied' })
    assert.ok(sidecar.logs().some(l => l.includes('store filesystem full')), 'the log says why')

    // Hits keep being served while full, and a Range of a passed-through blob works.
    const hit = await fetchBlob(blobUrl(pinnedDigest!))
    assert.equal(hit.headers.get('x-cache'), 'HIT')
    assert.equal(hit.digest, pinnedDigest)
    const ranged = await fetch(blobUrl(largeDigest!), { headers: { range: 'bytes=1000-1999' } })
    assert.equal(ranged.status, 206)
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), large.subarray(1000, 2000))

    // Not a byte free, nothing evictable (the rest is pinned): a manifest by tag is still
    // served, though neither it nor the tag can be stored.
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: await pushBlob(registry.url, REPO, config),
        size: config.length
      },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: fitsDigest, size: fits.length }]
    }))
    const pushed = await fetch(`${registry.url}/v2/${REPO}/manifests/v1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest
    })
    assert.equal(pushed.status, 201)
    const last = await fillUntil(mountpoint, 0, 'filler-rest')
    const byTag = await fetch(`${sidecar.url}/v2/${REPO}/manifests/v1`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }
    })
    assert.equal(byTag.status, 200)
    assert.deepEqual(Buffer.from(await byTag.arrayBuffer()), manifest)
    const apiAnswer = await call(`${sidecar.url}/github/repos/acme/public`)
    assert.equal(apiAnswer.status, 200, "an API answer is given though it can't be stored")
    assert.deepEqual(JSON.parse(apiAnswer.text), gh.body('/repos/acme/public'))
    assert.equal((await fetchBlob(blobUrl(pinnedDigest!))).headers.get('x-cache'), 'HIT')
    await rm(last)

    // Space returns: /readyz says so, and the next miss is stored again.
    await rm(filler)
    await waitFor(async () => !(await readyz(sidecar)).store.full, { timeoutMs: 10_000, what: '/readyz: not full once space returned' })
    assert.equal((await fetchBlob(blobUrl(largeDigest!))).digest, largeDigest)
    await waitFor(async () => await xcache(largeDigest!) === 'HIT', { timeoutMs: 10_000, what: 'the large blob stored once there is room' })
    assert.equal((await sidecar.stats()).store_full as unknown, false)
  })

  it('starts on a full filesystem: cached blobs make room for the index, and it serves', async () => {
    const data = randomBytes(2 * MiB)
    const digest = await pushBlob(registry.url, REPO, data)
    assert.equal((await fetchBlob(blobUrl(digest))).digest, digest)
    await waitFor(async () => await xcache(digest) === 'HIT', { timeoutMs: 10_000, what: 'committed' })
    await sidecar.stop()
    const filler = await fillUntil(mountpoint, 0, 'filler-at-start')
    try {
      await sidecar.restart()
      const ready = await readyz(sidecar)
      assert.equal(ready.status, 'ready')
      assert.equal(ready.store.full, true)
      assert.ok(sidecar.logs().some(l => l.includes('store filesystem full at start')), 'the log says what was removed')
      const again = await fetchBlob(blobUrl(digest))
      assert.equal(again.digest, digest, 'a blob is served (a hit, or streamed through)')
    } finally {
      await rm(filler)
    }
  })
})
