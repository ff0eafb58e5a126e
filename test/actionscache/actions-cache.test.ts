import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startHerd, type Herd, type HerdNode } from '../fixtures/herd.js'
import { runCli, startSidecar } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'
import { runtimeToken } from '../fixtures/runtime-token.js'
import { cacheJob } from '../fixtures/actions-cache-job.js'
import { spawnManaged } from '../fixtures/child.js'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'

const LIAR = resolve(fileURLToPath(import.meta.url), '../../fixtures/liar-peer.ts')
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService'
const MAIN = { scope: 'refs/heads/main', permission: 3 }

/** Runs the toolkit's @actions/cache in a job's environment on `node`. */
async function job (node: HerdNode, workspace: string, token: string, args: string[]): Promise<{ result: unknown, output: string }> {
  return await cacheJob(node.url, workspace, token, args)
}

async function twirp (
  node: HerdNode,
  token: string,
  method: string,
  body: object
): Promise<{ status: number, json: Record<string, unknown> }> {
  const r = await fetch(`${node.url}${SERVICE}/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  return { status: r.status, json: await r.json() as Record<string, unknown> }
}

/**
 * Issue 26: the Actions cache service v2 on two sidecars of a private swarm. The toolkit's own
 * client saves through A and restores through B; BuildKit's sequence (go-actions-cache
 * cache_v2.go: 1 MiB blocks, 88-character block IDs, size as a JSON number, x-ms-range) is sent
 * by hand, as BuildKit is not packaged here.
 */
describe('the Actions cache service (cache v2 API) across the swarm', function () {
  this.timeout(180_000)
  let herd: Herd
  let a: HerdNode
  let b: HerdNode
  let work: string
  const swarmKey = randomBytes(32).toString('hex')
  const files: Record<string, Buffer> = { 'deps/a.bin': randomBytes(300_000), 'deps/sub/b.txt': Buffer.from('hello cache\n'.repeat(1000)) }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-actions-'))
    herd = await startHerd({
      count: 2,
      env: { CACHE_SWARM_KEY: swarmKey, CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1', CACHE_LOG_LEVEL: 'debug' }
    })
    ;[a, b] = herd.nodes as [HerdNode, HerdNode]
    const ws = join(work, 'saver')
    for (const [path, body] of Object.entries(files)) {
      await mkdir(join(ws, path, '..'), { recursive: true })
      await writeFile(join(ws, path), body)
    }
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { a, b })
  })

  after(async () => {
    await herd?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  const restored = async (ws: string): Promise<void> => {
    for (const [path, body] of Object.entries(files)) {
      assert.ok((await readFile(join(ws, path))).equals(body), `${path} restored byte for byte`)
    }
  }

  it('@actions/cache saves through A and restores through B: exact key, a restore-key prefix, a miss; a second save of the key is refused', async () => {
    const token = runtimeToken([MAIN], { repositoryId: '101' })
    const saved = await job(a, join(work, 'saver'), token, ['save', 'deps-linux-1111', 'deps'])
    assert.ok(typeof saved.result === 'number' && saved.result > 0, `saved: ${saved.output}`)

    const exact = join(work, 'exact')
    await mkdir(exact)
    assert.equal((await job(b, exact, token, ['restore', 'deps-linux-1111', '', 'deps'])).result, 'deps-linux-1111')
    await restored(exact)

    const prefix = join(work, 'prefix')
    await mkdir(prefix)
    assert.equal((await job(b, prefix, token, ['restore', 'deps-linux-2222', 'deps-linux-', 'deps'])).result, 'deps-linux-1111')
    await restored(prefix)

    const miss = join(work, 'miss')
    await mkdir(miss)
    assert.equal((await job(b, miss, token, ['restore', 'other-key', 'other-', 'deps'])).result, null)

    const again = await job(b, join(work, 'saver'), token, ['save', 'deps-linux-1111', 'deps'])
    assert.equal(again.result, -1, 'the key exists (409 already_exists): the toolkit does not save it again')
    const stats = await b.stats()
    assert.ok((stats.actions_cache_hits ?? 0) >= 2 && (stats.actions_cache_misses ?? 0) >= 1)
    assert.ok((stats.bytes_from_peers ?? 0) > 0, 'B took the archive from A')
    assert.ok((stats.actions_cache_peer_downloads ?? 0) >= 1 && (stats.actions_cache_bytes_served ?? 0) > 0, JSON.stringify(stats))
  })

  it("scopes: another repository finds nothing; a feature branch reads main's entries but its saves never reach main", async () => {
    const other = join(work, 'other-repo')
    await mkdir(other)
    assert.equal(
      (await job(b, other, runtimeToken([MAIN], { repositoryId: '202' }), ['restore', 'deps-linux-1111', 'deps-', 'deps'])).result,
      null
    )

    const feature = runtimeToken([{ scope: 'refs/heads/feature', permission: 3 }, { scope: 'refs/heads/main', permission: 1 }], {
      repositoryId: '101'
    })
    const fromMain = join(work, 'feature-reads-main')
    await mkdir(fromMain)
    assert.equal((await job(a, fromMain, feature, ['restore', 'deps-linux-1111', '', 'deps'])).result, 'deps-linux-1111')
    const poisoned = await job(a, join(work, 'saver'), feature, ['save', 'deps-linux-3333', 'deps'])
    assert.ok(typeof poisoned.result === 'number' && poisoned.result > 0, "saved into the feature branch's own scope")
    const onMain = join(work, 'main-after-feature')
    await mkdir(onMain)
    assert.equal(
      (await job(b, onMain, runtimeToken([MAIN], { repositoryId: '101' }), ['restore', 'deps-linux-3333', '', 'deps'])).result,
      null,
      "main does not see the feature branch's entry"
    )
    const readOnly = await twirp(a, runtimeToken([{ scope: 'refs/heads/main', permission: 1 }]), 'CreateCacheEntry', {
      key: 'k',
      version: 'v'
    })
    assert.equal(readOnly.status, 403)
    assert.equal(readOnly.json.code, 'permission_denied')
    const noToken = await fetch(`${a.url}${SERVICE}/CreateCacheEntry`, { method: 'POST', body: '{}' })
    assert.equal(noToken.status, 401)
  })

  it("BuildKit's sequence (go-actions-cache v2): 1 MiB blocks with 88-character IDs, a block list, size as a number, 409 on a second create, x-ms-range on B", async () => {
    const token = runtimeToken([MAIN])
    const version = '693bb7016429d80366022f036f84856888c9f13e00145f5f6f4dce303a38d6f2'
    const blob = randomBytes(2.5 * 1024 * 1024)
    const key = `buildkit-blob-1-sha256:${createHash('sha256').update(blob).digest('hex')}`
    const created = await twirp(a, token, 'CreateCacheEntry', { key, version })
    assert.equal(created.status, 200)
    const upload = new URL(String(created.json.signed_upload_url))
    const ids: string[] = []
    for (let i = 0, n = 0; i < blob.byteLength; i += 1024 * 1024, n++) {
      const raw = Buffer.alloc(64)
      randomBytes(16).copy(raw)
      raw.writeUInt32BE(n, 16)
      const id = raw.toString('base64')
      assert.equal(id.length, 88)
      ids.push(id)
      const block = new URL(upload)
      block.searchParams.set('comp', 'block')
      block.searchParams.set('blockid', id)
      const put = await fetch(block, { method: 'PUT', headers: { 'x-ms-version': '2024-11-04' }, body: blob.subarray(i, i + 1024 * 1024) })
      assert.equal(put.status, 201)
    }
    const list = new URL(upload)
    list.searchParams.set('comp', 'blocklist')
    const committed = await fetch(list, {
      method: 'PUT',
      headers: { 'content-type': 'application/xml' },
      body: `<?xml version="1.0" encoding="UTF-8"?>\n<BlockList>${ids.map(id => `<Latest>${id}</Latest>`).join('')}</BlockList>`
    })
    assert.equal(committed.status, 201)
    assert.ok(committed.headers.get('x-ms-request-id') !== null, 'BuildKit logs x-ms-request-id and fails without it')
    const finalized = await twirp(a, token, 'FinalizeCacheEntryUpload', { key, size_bytes: blob.byteLength, version })
    assert.equal(finalized.json.ok, true)
    assert.equal(typeof finalized.json.entry_id, 'string', 'int64 as a JSON string: BuildKit decodes it into a Go string')
    const twice = await twirp(a, token, 'CreateCacheEntry', { key, version })
    assert.deepEqual([twice.status, twice.json.code], [409, 'already_exists'])

    const found = await twirp(b, token, 'GetCacheEntryDownloadURL', { key, restore_keys: [key], version })
    assert.equal(found.json.ok, true)
    const download = String(found.json.signed_download_url)
    const tail = await fetch(download, { headers: { 'x-ms-range': 'bytes=1048576-' } })
    assert.equal(tail.status, 206)
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(blob.subarray(1024 * 1024)), 'the bytes from the offset BuildKit resumes at')
    const missing = await twirp(b, token, 'GetCacheEntryDownloadURL', { key: 'nothing', restore_keys: ['nothing'], version })
    assert.deepEqual([missing.status, missing.json.ok], [200, false], 'a miss is ok:false, never a 404 (which fails a BuildKit build)')
  })

  it('diagnose: the service answers a lookup; used without a swarm key, it says entries stay on their runner', async () => {
    const lone = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' })
    try {
      const checks = async (
        node: { host: string, dir: string, env: NodeJS.ProcessEnv }
      ): Promise<Map<string, { verdict: string, summary: string }>> => {
        const env = {
          HOME: node.dir,
          CACHE_DIR: join(node.dir, 'data'),
          CACHE_ENABLE_P2P: 'false',
          CACHE_HTTP_ADDR: node.host,
          CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
          CACHE_API_UPSTREAMS: 'github=http://127.0.0.1:1',
          ...(node.env.CACHE_SWARM_KEY !== undefined ? { CACHE_SWARM_KEY: node.env.CACHE_SWARM_KEY } : {})
        }
        const r = await runCli(
          ['diagnose', '--json', '--docker-host', `unix://${join(work, 'no-docker.sock')}`, '--containerd-hosts', join(work, 'no-hosts')],
          env,
          { timeoutMs: 60_000 }
        )
        const report = JSON.parse(r.stdout) as { findings: Array<{ check: string, verdict: string, summary: string }> }
        return new Map(report.findings.filter(f => f.check.startsWith('actions-cache.')).map(f => [f.check, f]))
      }
      const swarm = await checks(a)
      assert.equal(swarm.get('actions-cache.service')?.verdict, 'ok', swarm.get('actions-cache.service')?.summary)
      assert.equal(swarm.get('actions-cache.shared'), undefined, 'a private swarm shares entries')
      await twirp({ url: lone.url } as HerdNode, runtimeToken([MAIN]), 'GetCacheEntryDownloadURL', { key: 'k', version: 'v' })
      const alone = await checks(lone)
      assert.equal(alone.get('actions-cache.shared')?.verdict, 'warn')
    } finally {
      await lone.destroy()
    }
  })

  it("a peer that lies about an entry's archive, and claims it to the coordinator, is caught by its digest: the job gets the right bytes from the holder the DHT knows, the liar is deny-listed", async () => {
    const token = runtimeToken([MAIN])
    const archive = randomBytes(700_000)
    const created = await twirp(a, token, 'CreateCacheEntry', { key: 'lied-about', version: 'v1' })
    assert.equal(
      (await fetch(String(created.json.signed_upload_url), { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: archive }))
        .status,
      201
    )
    assert.equal(
      (await twirp(a, token, 'FinalizeCacheEntryUpload', { key: 'lied-about', size_bytes: archive.byteLength, version: 'v1' })).json.ok,
      true
    )
    const digest = `sha256:${createHash('sha256').update(archive).digest('hex')}`
    let ready = false
    const liar = spawnManaged(process.execPath, ['--import', 'tsx', LIAR], {
      env: {
        PATH: process.env.PATH,
        LIAR_LISTEN: `/ip4/127.0.0.1/tcp/${await freePort()}`,
        LIAR_BOOTSTRAP: b.bootstrapAddr,
        LIAR_BLOBS: `${digest}=${archive.byteLength}`,
        LIAR_HERD: '1',
        LIAR_SWARM_KEY: swarmKey
      },
      onLine: line => {
        if (line.startsWith('READY ')) ready = true
      }
    })
    try {
      await waitFor(() => {
        if (!liar.isRunning()) throw new Error(`liar peer exited: ${liar.tail(20)}`)
        return ready
      }, { timeoutMs: 30_000, what: 'the liar announced the archive' })
      const found = await twirp(b, token, 'GetCacheEntryDownloadURL', { key: 'lied-about', version: 'v1' })
      let body = Buffer.alloc(0)
      // A response the liar fed is cut before its last byte (the digest is known only then): the client's one retry.
      for (let attempt = 0; attempt < 2 && !body.equals(archive); attempt++) {
        body = await fetch(String(found.json.signed_download_url)).then(async r => Buffer.from(await r.arrayBuffer())).catch(() =>
          Buffer.alloc(0)
        )
      }
      assert.ok(body.equals(archive), 'the job restores the right bytes')
      assert.ok(((await b.stats()).peers_denied ?? 0) >= 1, 'the liar is deny-listed')
    } finally {
      await liar.stop()
    }
  })

  it('an upload cut mid-way, or finalized with the wrong size, leaves no entry', async () => {
    const token = runtimeToken([MAIN])
    const cut = await twirp(a, token, 'CreateCacheEntry', { key: 'cut-mid-way', version: 'v1' })
    const cutUrl = new URL(String(cut.json.signed_upload_url))
    await new Promise<void>((resolvePromise, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(cutUrl.port) }, () => {
        socket.write(
          `PUT ${cutUrl.pathname} HTTP/1.1\r\nHost: ${cutUrl.host}\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 100000\r\n\r\n`
        )
        socket.write(randomBytes(50_000), () => {
          socket.destroy()
          resolvePromise()
        })
      })
      socket.on('error', reject)
    })
    const afterCut = await twirp(a, token, 'FinalizeCacheEntryUpload', { key: 'cut-mid-way', size_bytes: 100000, version: 'v1' })
    assert.equal(afterCut.json.ok, false, 'nothing was committed')
    assert.equal((await twirp(a, token, 'GetCacheEntryDownloadURL', { key: 'cut-mid-way', version: 'v1' })).json.ok, false)
    const created = await twirp(a, token, 'CreateCacheEntry', { key: 'cut', version: 'v1' })
    const upload = new URL(String(created.json.signed_upload_url))
    const put = await fetch(upload, { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: randomBytes(1000) })
    assert.equal(put.status, 201)
    const wrong = await twirp(a, token, 'FinalizeCacheEntryUpload', { key: 'cut', size_bytes: '999', version: 'v1' })
    assert.equal(wrong.json.ok, false)
    assert.match(String(wrong.json.message), /999.*1000/)
    assert.equal((await twirp(a, token, 'GetCacheEntryDownloadURL', { key: 'cut', version: 'v1' })).json.ok, false)
    const never = await twirp(a, token, 'FinalizeCacheEntryUpload', { key: 'never-uploaded', size_bytes: 10, version: 'v1' })
    assert.equal(never.json.ok, false)
  })
})
