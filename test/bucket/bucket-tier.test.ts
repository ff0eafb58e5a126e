import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, type ImageDescription } from '../fixtures/oci-image.js'
import { layoutBlobDigests, pullToLayout, pushLayout, skopeoCopy } from '../fixtures/skopeo.js'
import { runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, startSwarmNode, type SwarmNode } from '../fixtures/swarm.js'
import { startS3Server, type S3Server } from '../fixtures/s3-server.js'
import { runtimeToken } from '../fixtures/runtime-token.js'
import { cacheJob } from '../fixtures/actions-cache-job.js'
import { waitFor } from '../fixtures/wait.js'

const blobKey = (digest: string): string => `cache/blobs/sha256/${digest.slice('sha256:'.length)}`

/**
 * Issue 27: the bucket (CACHE_S3_URL) as the fleet's durable second tier, with s3rver behind
 * the real AWS SDK. The overnight scenario: runner A pulls, A is destroyed with its disk, the
 * upstream goes down, and a fresh runner with no peers pulls the same image from the bucket.
 */
describe('the bucket tier (S3) across a fleet that scales to zero', function () {
  this.timeout(240_000)
  let work: string
  let registry: Registry
  let s3: S3Server
  let image: ImageDescription
  const nodes: SidecarProcess[] = []
  const named: Record<string, SidecarProcess | undefined> = {}

  /** A runner's sidecar with the bucket and no peers. */
  const runner = async (name: string, env: NodeJS.ProcessEnv = {}): Promise<SidecarProcess> => {
    const node = await startSidecar({
      CACHE_ENABLE_P2P: 'false',
      CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
      CACHE_LOG_LEVEL: 'debug',
      ...s3.env(),
      ...env
    })
    nodes.push(node)
    named[name] = node
    return node
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-bucket-'))
    registry = await startRegistry()
    s3 = await startS3Server()
    // One layer above the 16 MiB part size: written as a multipart upload.
    image = await buildImage(join(work, 'img'), { tag: 'v1', layers: [randomBytes(20 * 1024 * 1024), randomBytes(100_000)] })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'team/app')
  })

  afterEach(function () {
    dumpLogsIfFailed(this, named)
  })

  after(async () => {
    for (const n of nodes) await n.destroy()
    await registry?.destroy()
    await s3?.close()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('overnight: what runner A pulled is in the bucket once; with A gone and the upstream down, a fresh runner pulls it from there, tag included', async () => {
    const a = await runner('a')
    await pullToLayout(a.host, 'team/app', 'v1', join(work, 'a'))
    // Every blob and manifest once, and the tag.
    await waitFor(
      () => image.allBlobDigests.every(d => s3.puts.get(blobKey(d)) === 1) && s3.putsUnder('cache/records/upstream-tag/').length > 0,
      { timeoutMs: 30_000, intervalMs: 100, what: 'the image and its tag in the bucket' }
    )
    assert.deepEqual(s3.putsUnder('cache/blobs/').map(([, n]) => n), image.allBlobDigests.map(() => 1))
    assert.ok(((await a.stats()).s3_bytes_written ?? 0) > 20 * 1024 * 1024)
    await a.destroy()
    await registry.stop()

    const b = await runner('b')
    try {
      await pullToLayout(b.host, 'team/app', 'v1', join(work, 'b'))
      assert.deepEqual(new Set(await layoutBlobDigests(join(work, 'b'))), new Set(image.allBlobDigests))
      const res = await fetch(`${b.url}/v2/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
      await res.arrayBuffer()
      assert.equal(res.headers.get('x-cache-tag-source'), 's3')
      const stats = await b.stats()
      assert.ok((stats.s3_hits ?? 0) >= image.allBlobDigests.length, `s3_hits ${stats.s3_hits}`)
      assert.equal(stats.upstream_hits, 0)
      // The access log names the bucket as the source.
      assert.ok(b.logs().some(l => l.includes('"msg":"request"') && l.includes('"source":"s3"')))
      // Nothing came from the upstream: nothing is written back.
      assert.equal(stats.s3_uploads, 0)
    } finally {
      await registry.start()
    }
  })

  it('a corrupted object: the runner falls back to the upstream, reports it, and the bucket copy is written over', async () => {
    const layer = image.layers[1] as ImageDescription['layers'][number]
    const good = await s3.read(blobKey(layer.digest))
    assert.ok(good !== undefined)
    const bad = Buffer.from(good)
    bad[100] = (bad[100] ?? 0) ^ 0xff
    await s3.write(blobKey(layer.digest), bad)
    const c = await runner('c')
    // No retry needed: a small object is verified before the client gets a byte of it.
    await pullToLayout(c.host, 'team/app', 'v1', join(work, 'c'))
    assert.deepEqual(new Set(await layoutBlobDigests(join(work, 'c'))), new Set(image.allBlobDigests))
    assert.equal((await c.stats()).s3_bad_objects, 1)
    assert.ok(c.logs().some(l => l.includes('bad object in the bucket')))
    await waitFor(async () => (await s3.read(blobKey(layer.digest)))?.equals(good) === true, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'the bucket copy written over'
    })
  })

  it('the bucket down: pulls go on from the upstream, errors are counted, and the uploads land once it is back', async () => {
    const other = await buildImage(join(work, 'img2'), { tag: 'v2', layers: 2, layerSize: 64 * 1024 })
    await pushLayout(join(work, 'img2'), 'v2', registry.host, 'team/app')
    await s3.stop()
    try {
      const d = await runner('d')
      await pullToLayout(d.host, 'team/app', 'v2', join(work, 'd'))
      assert.deepEqual(new Set(await layoutBlobDigests(join(work, 'd'))), new Set(other.allBlobDigests))
      await waitFor(async () => ((await d.stats()).s3_errors ?? 0) >= 1, { timeoutMs: 10_000, what: 'bucket errors counted' })
      // Counted when the blob is committed, which can come a moment after the client had its last byte.
      await waitFor(async () => (await d.stats()).upstream_hits === other.allBlobDigests.length, {
        timeoutMs: 10_000,
        what: `upstream_hits to reach ${other.allBlobDigests.length}`
      })
    } finally {
      await s3.restart()
    }
    // Failed uploads are tried again with backoff.
    await waitFor(() => other.allBlobDigests.every(dg => s3.puts.get(blobKey(dg)) === 1), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'the uploads retried once the bucket is back'
    })
  })

  it('a push to the local namespace and an Actions cache entry outlive the runner that made them', async () => {
    const e = await runner('e')
    await skopeoCopy(`oci:${join(work, 'img')}:v1`, `docker://${e.host}/local/app:build-1`, { destTlsVerify: false })
    const ws = join(work, 'saver')
    await mkdir(join(ws, 'deps'), { recursive: true })
    const archived = randomBytes(200_000)
    await writeFile(join(ws, 'deps', 'a.bin'), archived)
    const token = runtimeToken([{ scope: 'refs/heads/main', permission: 3 }], { repositoryId: '7' })
    const saved = await cacheJob(e.url, ws, token, ['save', 'deps-1', 'deps'])
    assert.ok(typeof saved.result === 'number', saved.output)
    await waitFor(
      () =>
        s3.putsUnder('cache/records/push-tag/').length === 1 && s3.putsUnder('cache/records/actions-cache/').length === 1 &&
        (named.e !== undefined),
      { timeoutMs: 30_000, intervalMs: 100, what: 'the pushed tag and the cache entry in the bucket' }
    )
    await waitFor(async () => (await e.stats()).s3_queue === 0, { timeoutMs: 30_000, intervalMs: 100, what: 'the uploads done' })
    await e.destroy()

    const f = await runner('f')
    await pullToLayout(f.host, 'local/app', 'build-1', join(work, 'f'))
    assert.deepEqual(new Set(await layoutBlobDigests(join(work, 'f'))), new Set(image.allBlobDigests))
    const restored = join(work, 'restorer')
    await mkdir(restored)
    assert.equal((await cacheJob(f.url, restored, token, ['restore', 'deps-1', '', 'deps'])).result, 'deps-1')
    assert.ok((await readFile(join(restored, 'deps', 'a.bin'))).equals(archived))
  })

  it('diagnose: the bucket answers, takes a write, and its clock agrees; a bucket that is down fails with the fix', async () => {
    const checks = async (env: NodeJS.ProcessEnv): Promise<Map<string, { verdict: string, summary: string }>> => {
      const home = join(work, 'diagnose-home')
      await mkdir(home, { recursive: true })
      const r = await runCli(
        ['diagnose', '--json', '--docker-host', `unix://${join(work, 'no-docker.sock')}`, '--containerd-hosts', join(work, 'no-hosts')],
        {
          HOME: home,
          CACHE_DIR: join(home, 'data'),
          CACHE_ENABLE_P2P: 'false',
          CACHE_HTTP_ADDR: '127.0.0.1:1',
          CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
          CACHE_API_UPSTREAMS: 'github=http://127.0.0.1:1',
          ...env
        },
        { timeoutMs: 60_000 }
      )
      const report = JSON.parse(r.stdout) as { findings: Array<{ check: string, verdict: string, summary: string }> }
      return new Map(report.findings.filter(f => f.check.startsWith('bucket.')).map(f => [f.check, f]))
    }
    const up = await checks(s3.env())
    for (const check of ['bucket.reachable', 'bucket.writable', 'bucket.clock']) {
      assert.equal(up.get(check)?.verdict, 'ok', `${check}: ${up.get(check)?.summary}`)
    }
    assert.ok(!JSON.stringify([...up.values()]).includes('S3RVER'), 'no credential in the report')
    await s3.stop()
    try {
      const down = await checks(s3.env())
      assert.equal(down.get('bucket.reachable')?.verdict, 'fail')
      assert.match(down.get('bucket.reachable')?.summary ?? '', /did not answer/)
    } finally {
      await s3.restart()
    }
  })

  it('three nodes pulling the same cold image upload each digest once (the claim holder does)', async () => {
    const third = await buildImage(join(work, 'img3'), { tag: 'v3', layers: 3, layerSize: 512 * 1024 })
    await pushLayout(join(work, 'img3'), 'v3', registry.host, 'team/herd')
    const env = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`, ...s3.env() }
    const first: SwarmNode = await startSwarmNode(env)
    nodes.push(first)
    const rest = [
      await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: first.bootstrapAddr }),
      await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: first.bootstrapAddr })
    ]
    nodes.push(...rest)
    const herd = [first, ...rest]
    for (const n of herd) {
      await waitFor(async () => ((await n.stats()).peers_connected ?? 0) >= 2, { timeoutMs: 15_000, what: 'the three nodes connected' })
    }
    await Promise.all(herd.map(async (n, i) => await pullToLayout(n.host, 'team/herd', 'v3', join(work, `herd-${i}`))))
    await waitFor(async () => {
      const queues = await Promise.all(herd.map(async n => (await n.stats()).s3_queue))
      return queues.every(q => q === 0) && third.allBlobDigests.every(d => s3.puts.has(blobKey(d)))
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'the uploads done' })
    assert.deepEqual(third.allBlobDigests.map(d => s3.puts.get(blobKey(d))), third.allBlobDigests.map(() => 1))
  })
})
