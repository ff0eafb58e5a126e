import assert from 'node:assert/strict'
import { request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHttpServer } from '../../../src/http/server.js'
import { ClientLog } from '../../../src/http/client-log.js'
import { Stats } from '../../../src/metrics/stats.js'
import { DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/media-types.js'
import { RegistryRoutes } from '../../../src/registry/routes.js'
import { UpstreamSet } from '../../../src/registry/upstreams.js'
import { BlobResolver } from '../../../src/resolver/blob-resolver.js'
import { ListCache } from '../../../src/resolver/list-cache.js'
import { ManifestResolver } from '../../../src/resolver/manifest-resolver.js'
import { TagCache } from '../../../src/resolver/tag-cache.js'
import { FakeRegistryUpstream, pseudoRandom, sha256 } from '../fakes/registry-upstream.js'
import { silentLog } from '../fakes/log.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { FakeClock } from '../fakes/clock.js'
import { waitFor } from '../../fixtures/wait.js'

/** Polls `check` until it holds, failing with `what` after 2 s. */
async function until (check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 2000
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** Whether the client saw a complete response, or the connection was cut mid-body. */
type Outcome = { complete: true, answer: Answer } | { complete: false, error: Error }

describe('RegistryRoutes: the OCI pull API over a real store and resolvers, with a fake upstream', () => {
  let t: TestStore
  let hub: FakeRegistryUpstream
  let ghcr: FakeRegistryUpstream
  let blobs: BlobResolver
  let server: Server
  let port: number
  const clock = new FakeClock()

  before(async () => {
    t = await openTestStore({ policy: { maxSize: 100_000_000 }, clock })
    hub = new FakeRegistryUpstream({ name: 'docker.io', url: 'https://registry-1.docker.io', chunkSize: 4096 })
    ghcr = new FakeRegistryUpstream({ name: 'ghcr.io', url: 'https://ghcr.io', chunkSize: 4096 })
    const log = silentLog()
    const stats = new Stats({ currentSize: () => t.store.size, peersConnected: () => 0, storeFull: () => false })
    blobs = new BlobResolver({ store: t.store, stats, log })
    const routes = new RegistryRoutes({
      upstreams: new UpstreamSet([hub, ghcr]),
      blobs,
      manifests: new ManifestResolver({ tags: new TagCache(t.store.db), stats, log, blobs }),
      lists: new ListCache(t.store.db, { stats, log }),
      clients: new ClientLog(),
      stats,
      log
    })
    server = createHttpServer([routes], log, { headerTimeoutMs: 5000, idleTimeoutMs: 1000, stallTimeoutMs: 5000, maxConnections: 64 })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  after(async () => {
    await blobs.drain(0)
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
    await hub.close()
    await ghcr.close()
    await t.dispose()
  })

  /** One request on its own connection; rejects when the response is cut. */
  async function call (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
    return await new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('aborted', () => {
          reject(new Error('response aborted'))
        })
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
        })
      })
      req.on('error', reject)
      req.end()
    })
  }

  async function outcome (path: string, headers: Record<string, string> = {}): Promise<Outcome> {
    try {
      return { complete: true, answer: await call(path, headers) }
    } catch (err) {
      return { complete: false, error: err as Error }
    }
  }

  /** X-Cache-Date: an HTTP-date (IMF-fixdate) not before `since` (to the second) and not in the future. */
  function assertCacheDate (a: Answer, since: number, what: string): void {
    const value = String(a.headers['x-cache-date'])
    assert.match(value, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, what)
    const at = Date.parse(value)
    assert.ok(at >= Math.floor(since / 1000) * 1000 && at <= Date.now(), `${what}: ${value} is between the test's start and now`)
  }

  function ociCode (a: Answer): string {
    return (JSON.parse(a.body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code ?? ''
  }

  function ociMessage (a: Answer): string {
    return (JSON.parse(a.body.toString('utf8')) as { errors: Array<{ message: string }> }).errors[0]?.message ?? ''
  }

  it('GET and HEAD /v2/ answer 200 with the distribution API version header', async () => {
    const get = await call('/v2/')
    assert.equal(get.status, 200)
    assert.equal(get.headers['docker-distribution-api-version'], 'registry/2.0')
    assert.equal(get.body.toString(), '{}')
    const head = await call('/v2/', {}, 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.body.byteLength, 0)
    assert.equal(hub.requests.length, 0, 'the base endpoint never asks the upstream')
  })

  it('a manifest by tag: resolved by HEAD upstream (Docker Hub library/ prefix), fetched by digest, with its type and digest', async () => {
    const img = hub.addImage('library/tagpull', 'v1')
    const a = await call('/v2/tagpull/manifests/v1', { accept: OCI_MANIFEST })
    assert.equal(a.status, 200)
    assert.deepEqual(a.body, img.manifest)
    assert.equal(a.headers['content-type'], OCI_MANIFEST)
    assert.equal(a.headers['docker-content-digest'], img.digest)
    assert.equal(a.headers.etag, `"${img.digest}"`)
    assert.equal(a.headers['x-cache'], 'MISS')
    assert.equal(a.headers['x-cache-source'], 'docker.io')
    assert.equal(hub.count('HEAD', '/v2/library/tagpull/manifests/v1'), 1)
    assert.equal(
      hub.count('GET', '/v2/library/tagpull/manifests/v1'),
      0,
      'the tag is not downloaded (HEADs do not count against pull limits)'
    )
    assert.equal(hub.count('GET', `/v2/library/tagpull/manifests/${img.digest}`), 1)
  })

  it('HEAD of a manifest by tag answers from the upstream HEAD alone, without downloading it', async () => {
    const img = hub.addImage('library/headonly', 'v1')
    const a = await call('/v2/headonly/manifests/v1', {}, 'HEAD')
    assert.equal(a.status, 200)
    assert.equal(a.body.byteLength, 0)
    assert.equal(a.headers['content-length'], String(img.manifest.byteLength))
    assert.equal(a.headers['docker-content-digest'], img.digest)
    assert.equal(a.headers['x-cache'], 'MISS')
    assert.equal(hub.count('GET', `/v2/library/headonly/manifests/${img.digest}`), 0)
  })

  it("Accept is negotiated: the client's types go upstream; an index only to a client that accepts one", async () => {
    const amd = hub.addImage('library/multi', undefined, { layers: [10] })
    const arm = hub.addImage('library/multi', undefined, { layers: [11] })
    const index = hub.addIndex('library/multi', 'v1', [amd, arm])
    const single = await call('/v2/multi/manifests/v1', { accept: OCI_MANIFEST })
    assert.equal(single.status, 404, 'like distribution: an index is not served to a client that only takes manifests')
    assert.equal(ociCode(single), 'MANIFEST_UNKNOWN')
    const head = hub.requests.find(r => r.method === 'HEAD' && r.path === '/v2/library/multi/manifests/v1')
    assert.equal(head?.headers.accept, OCI_MANIFEST)
    const both = await call('/v2/multi/manifests/v1', { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` })
    assert.equal(both.status, 200)
    assert.equal(both.headers['content-type'], OCI_INDEX)
    assert.equal(both.headers['docker-content-digest'], index.digest)
    assert.deepEqual(both.body, index.body)
  })

  it('a Docker manifest list keeps its media type', async () => {
    const img = hub.addImage('library/dockerlist', undefined)
    const list = hub.addIndex('library/dockerlist', 'v1', [img], DOCKER_MANIFEST_LIST)
    const a = await call('/v2/dockerlist/manifests/v1')
    assert.equal(a.status, 200)
    assert.equal(a.headers['content-type'], DOCKER_MANIFEST_LIST)
    assert.equal(a.headers['docker-content-digest'], list.digest)
  })

  it('a second pull by digest (manifest and blobs) is served from the store without touching the upstream', async () => {
    const img = hub.addImage('library/repull', 'v1', { layers: [50_000, 3000] })
    const paths = [`/v2/repull/manifests/${img.digest}`, ...[img.config, ...img.layers].map(b => `/v2/repull/blobs/${b.digest}`)]
    // The store's clock (a FakeClock) says when each copy was stored; serving happens later.
    const storedAt = new Date(clock.now()).toUTCString()
    for (const p of paths) {
      const a = await call(p)
      assert.equal(a.headers['x-cache'], 'MISS', p)
      assert.equal(a.headers['x-cache-date'], undefined, `${p}: no stored copy, no X-Cache-Date`)
    }
    // A blob fetched on a miss is committed just after the client's last byte.
    const digests = [img.digest, img.config.digest, ...img.layers.map(l => l.digest)]
    await waitFor(async () => (await Promise.all(digests.map(async d => await blobs.stored(d)))).every(Boolean), {
      timeoutMs: 5_000,
      intervalMs: 10,
      what: 'the pulled blobs to be committed'
    })
    clock.advance(3_600_000)
    const before = hub.requests.length
    for (const p of paths) {
      const a = await call(p)
      assert.equal(a.status, 200, p)
      assert.equal(a.headers['x-cache'], 'HIT', p)
      assert.equal(a.headers['x-cache-source'], 'local', p)
      assert.equal(a.headers['x-cache-date'], storedAt, `${p}: when it was stored, not when served`)
      const head = await call(p, {}, 'HEAD')
      assert.equal(head.headers['x-cache'], 'HIT', `HEAD ${p}`)
      assert.equal(head.headers['x-cache-date'], a.headers['x-cache-date'], `HEAD ${p}: the same stored copy`)
    }
    assert.equal(hub.requests.length, before, 'no upstream request')
    // A HEAD by tag asks the upstream what the tag points to; the manifest is stored here.
    const byTag = await call('/v2/repull/manifests/v1', {}, 'HEAD')
    assert.equal(byTag.headers['x-cache'], 'HIT')
    assert.equal(byTag.headers['x-cache-date'], storedAt)
    const layer = await call(`/v2/repull/blobs/${img.layers[0]?.digest ?? ''}`)
    assert.deepEqual(layer.body, img.layers[0]?.body)
  })

  it('a blob: 200 with its size and digest; a Range gets 206 with Content-Range', async () => {
    const img = hub.addImage('library/ranges', 'v1', { layers: [20_000] })
    const layer = img.layers[0] ?? assert.fail()
    const full = await call(`/v2/ranges/blobs/${layer.digest}`)
    assert.equal(full.status, 200)
    assert.equal(full.headers['content-length'], '20000')
    assert.equal(full.headers['docker-content-digest'], layer.digest)
    assert.equal(full.headers['accept-ranges'], 'bytes')
    assert.deepEqual(full.body, layer.body)
    const part = await call(`/v2/ranges/blobs/${layer.digest}`, { range: 'bytes=100-199' })
    assert.equal(part.status, 206)
    assert.equal(part.headers['content-range'], 'bytes 100-199/20000')
    assert.equal(part.headers['content-length'], '100')
    assert.deepEqual(part.body, layer.body.subarray(100, 200))
    const tail = await call(`/v2/ranges/blobs/${layer.digest}`, { range: 'bytes=19990-' })
    assert.equal(tail.status, 206)
    assert.deepEqual(tail.body, layer.body.subarray(19990))
  })

  it('a Range past the end is 416 with Content-Range bytes */size', async () => {
    const digest = hub.addBlob('library/range416', pseudoRandom(1000, '416'))
    const a = await call(`/v2/range416/blobs/${digest}`, { range: 'bytes=5000-' })
    assert.equal(a.status, 416)
    assert.equal(a.headers['content-range'], 'bytes */1000')
  })

  it('a Range on a blob not yet stored is answered while it downloads', async () => {
    const body = pseudoRandom(30_000, 'range-miss')
    const digest = hub.addBlob('library/rangemiss', body)
    const a = await call(`/v2/rangemiss/blobs/${digest}`, { range: 'bytes=25000-25009' })
    assert.equal(a.status, 206)
    assert.equal(a.headers['content-range'], 'bytes 25000-25009/30000')
    assert.deepEqual(a.body, body.subarray(25000, 25010))
  })

  it('HEAD of a blob states its size, from the upstream before it is stored and from the store after', async () => {
    const body = pseudoRandom(1234, 'head-blob')
    const digest = hub.addBlob('library/headblob', body)
    const miss = await call(`/v2/headblob/blobs/${digest}`, {}, 'HEAD')
    assert.equal(miss.status, 200)
    assert.equal(miss.headers['content-length'], '1234')
    assert.equal(miss.headers['x-cache'], 'MISS')
    assert.equal(miss.body.byteLength, 0)
    assert.equal(hub.count('GET', `/v2/library/headblob/blobs/${digest}`), 0, 'a HEAD downloads nothing')
    await call(`/v2/headblob/blobs/${digest}`)
    const hit = await call(`/v2/headblob/blobs/${digest}`, {}, 'HEAD')
    assert.equal(hit.headers['content-length'], '1234')
    assert.equal(hit.headers['x-cache'], 'HIT')
  })

  it("unknown manifests, blobs and repositories get the upstream's OCI error (404)", async () => {
    hub.addImage('library/known', 'v1')
    const tag = await call('/v2/known/manifests/nope')
    assert.equal(tag.status, 404)
    assert.equal(ociCode(tag), 'MANIFEST_UNKNOWN')
    const blob = await call(`/v2/known/blobs/${sha256('absent')}`)
    assert.equal(blob.status, 404)
    assert.equal(ociCode(blob), 'BLOB_UNKNOWN')
    const repo = await call(`/v2/never/manifests/${sha256('never')}`)
    assert.equal(repo.status, 404)
    assert.equal(ociCode(repo), 'NAME_UNKNOWN')
    const byTag = await call('/v2/never/manifests/latest')
    assert.equal(byTag.status, 404, "the upstream HEAD has no body: the code is the endpoint's")
    assert.equal(ociCode(byTag), 'MANIFEST_UNKNOWN')
    const head = await call(`/v2/known/blobs/${sha256('absent')}`, {}, 'HEAD')
    assert.equal(head.status, 404)
    assert.equal(head.body.byteLength, 0)
  })

  it('an upstream 429 is a 429 TOOMANYREQUESTS with its Retry-After and what to do', async () => {
    const digest = hub.addBlob('library/limited', 'x'.repeat(100))
    hub.fault(`/v2/library/limited/blobs/${digest}`, { kind: 'status', status: 429, retryAfter: '30' })
    const a = await call(`/v2/limited/blobs/${digest}`)
    assert.equal(a.status, 429)
    assert.equal(a.headers['retry-after'], '30')
    assert.equal(ociCode(a), 'TOOMANYREQUESTS')
    assert.match(ociMessage(a), /rate limiting this host.*try again in 30 s.*CACHE_REGISTRY_AUTH/)
    const retry = await call(`/v2/limited/blobs/${digest}`)
    assert.equal(retry.status, 200, 'the fault was for one request')
  })

  it('an upstream 5xx or connection failure is a 502 UPSTREAM_UNAVAILABLE saying what to check', async () => {
    const digest = hub.addBlob('library/down', 'y'.repeat(100))
    hub.fault(`/v2/library/down/blobs/${digest}`, { kind: 'status', status: 503 })
    const a = await call(`/v2/down/blobs/${digest}`)
    assert.equal(a.status, 502)
    assert.equal(ociCode(a), 'UPSTREAM_UNAVAILABLE')
    assert.match(ociMessage(a), /answered 503.*not in the cache.*CACHE_REGISTRY_UPSTREAMS/)
    hub.fault('/v2/library/down/manifests/latest', { kind: 'connection' })
    const m = await call('/v2/down/manifests/latest')
    assert.equal(m.status, 502)
    assert.match(ociMessage(m), /ECONNREFUSED/)
  })

  it('a tag is served from its last resolution while the upstream is down, marked stale', async () => {
    const img = hub.addImage('library/stale', 'v1')
    assert.equal((await call('/v2/stale/manifests/v1')).status, 200)
    hub.fault('/v2/library/stale/manifests/v1', { kind: 'status', status: 502 })
    const a = await call('/v2/stale/manifests/v1')
    assert.equal(a.status, 200)
    assert.equal(a.headers['docker-content-digest'], img.digest)
    assert.match(String(a.headers.warning), /^110 p2p-cache "Response is Stale/)
    assert.ok(a.headers['x-cache-stale-tag'] !== undefined)
  })

  it('an upstream 401 or 403 without a JSON body becomes UNAUTHORIZED / DENIED', async () => {
    hub.addImage('library/private', 'v1')
    hub.fault('/v2/library/private/manifests/v1', { kind: 'status', status: 401, body: '' })
    const a = await call('/v2/private/manifests/v1')
    assert.equal(a.status, 401)
    assert.equal(ociCode(a), 'UNAUTHORIZED')
    hub.fault('/v2/library/private/manifests/v1', { kind: 'status', status: 403, body: '' })
    const d = await call('/v2/private/manifests/v1')
    assert.equal(d.status, 403)
    assert.equal(ociCode(d), 'DENIED')
  })

  it('wrong bytes from the upstream never reach the client as a complete blob, and nothing is stored', async () => {
    const body = pseudoRandom(10_000, 'corrupt')
    const digest = hub.addBlob('library/corrupt', body)
    hub.fault(`/v2/library/corrupt/blobs/${digest}`, { kind: 'corrupt' })
    const first = await outcome(`/v2/corrupt/blobs/${digest}`)
    if (first.complete) {
      assert.notEqual(first.answer.status, 200)
      assert.equal(ociCode(first.answer), 'DIGEST_INVALID')
    } else {
      assert.ok(first.error instanceof Error, 'the response was cut before its end')
    }
    assert.equal(await t.store.stat(digest), undefined)
    const retry = await call(`/v2/corrupt/blobs/${digest}`)
    assert.equal(retry.status, 200)
    assert.deepEqual(retry.body, body)
  })

  it('an upstream that drops mid-blob is resumed with a Range: the client gets one whole blob', async () => {
    const body = pseudoRandom(40_000, 'drop')
    const digest = hub.addBlob('library/dropped', body)
    hub.fault(`/v2/library/dropped/blobs/${digest}`, { kind: 'drop', afterBytes: 12_288 })
    const a = await call(`/v2/dropped/blobs/${digest}`)
    assert.equal(a.status, 200)
    assert.deepEqual(a.body, body)
    const resumed = hub.requests.filter(r => r.path === `/v2/library/dropped/blobs/${digest}`)
    assert.equal(resumed.length, 2)
    assert.equal(resumed[1]?.headers.range, 'bytes=12288-')
    await until(async () => await t.store.stat(digest) !== undefined, 'the blob is stored after the resume')
  })

  it("?ns= sends the request to the named upstream, without Docker Hub's library/ prefix", async () => {
    const img = ghcr.addImage('alpine', 'v1')
    const a = await call('/v2/alpine/manifests/v1?ns=ghcr.io')
    assert.equal(a.status, 200)
    assert.equal(a.headers['x-cache-source'], 'ghcr.io')
    assert.equal(a.headers['docker-content-digest'], img.digest)
    assert.equal(ghcr.count('HEAD', '/v2/alpine/manifests/v1'), 1)
  })

  it('an unknown ?ns= is 400 naming the CACHE_REGISTRY_UPSTREAMS entry to add', async () => {
    const a = await call('/v2/alpine/manifests/v1?ns=quay.io')
    assert.equal(a.status, 400)
    assert.equal(ociCode(a), 'UNSUPPORTED')
    assert.match(ociMessage(a), /add it to CACHE_REGISTRY_UPSTREAMS as quay\.io=https:\/\/quay\.io/)
  })

  it('bad paths and write methods get OCI errors without asking the upstream', async () => {
    const before = hub.requests.length
    const name = await call('/v2/Bad%2fName/manifests/v1')
    assert.equal(name.status, 400)
    assert.equal(ociCode(name), 'NAME_INVALID')
    const digest = await call('/v2/alpine/blobs/sha256:1234')
    assert.equal(ociCode(digest), 'DIGEST_INVALID')
    const put = await call('/v2/alpine/manifests/v1', {}, 'PUT')
    assert.equal(put.status, 405)
    assert.match(ociMessage(put), /read-only pull-through mirror/)
    const none = await call('/v2/alpine/blobs/uploads/')
    assert.equal(none.status, 404)
    assert.equal(hub.requests.length, before)
  })

  it("tags/list passes the upstream's list through; its next-page Link points at the sidecar, ns kept", async () => {
    const img = ghcr.addImage('org/tags', 'a')
    ghcr.tag('org/tags', 'b', img.digest)
    ghcr.tag('org/tags', 'c', img.digest)
    const all = await call('/v2/org/tags/tags/list?ns=ghcr.io')
    assert.equal(all.status, 200)
    assert.deepEqual(JSON.parse(all.body.toString()), { name: 'org/tags', tags: ['a', 'b', 'c'] })
    const page = await call('/v2/org/tags/tags/list?n=2&ns=ghcr.io')
    assert.deepEqual((JSON.parse(page.body.toString()) as { tags: string[] }).tags, ['a', 'b'])
    assert.equal(page.headers.link, '</v2/org/tags/tags/list?n=2&last=b&ns=ghcr.io>; rel="next"')
    assert.equal(ghcr.count('GET', '/v2/org/tags/tags/list?n=2'), 1, 'ns is not sent upstream')
  })

  it('tags/list is revalidated with the ETag, and served stale while the upstream is down', async () => {
    hub.addImage('library/listed', 'v1')
    const started = Date.now()
    const first = await call('/v2/listed/tags/list')
    assert.equal(first.headers['x-cache'], 'MISS')
    const again = await call('/v2/listed/tags/list')
    assert.equal(again.headers['x-cache'], 'REVALIDATED')
    const sent = hub.requests.filter(r => r.path === '/v2/library/listed/tags/list')
    assert.ok(sent[1]?.headers['if-none-match'] !== undefined)
    hub.fault('/v2/library/listed/tags/list', { kind: 'status', status: 500 })
    const stale = await call('/v2/listed/tags/list')
    assert.equal(stale.status, 200)
    assert.equal(stale.headers['x-cache'], 'HIT')
    assertCacheDate(stale, started, 'stale tags/list')
    assert.match(String(stale.headers.warning), /Response is Stale/)
    assert.deepEqual(stale.body, first.body)
  })

  it('referrers lists the artifacts whose subject is the digest, filtered by artifactType on request', async () => {
    const img = hub.addImage('library/signed', 'v1')
    const subject = { digest: img.digest, mediaType: img.mediaType, size: img.manifest.byteLength }
    const sig = hub.addImage('library/signed', undefined, { artifactType: 'application/vnd.dev.cosign', subject })
    hub.addImage('library/signed', undefined, { artifactType: 'application/spdx+json', subject })
    const all = await call(`/v2/signed/referrers/${img.digest}`)
    assert.equal(all.status, 200)
    assert.equal(all.headers['content-type'], OCI_INDEX)
    assert.equal((JSON.parse(all.body.toString()) as { manifests: unknown[] }).manifests.length, 2)
    const filtered = await call(`/v2/signed/referrers/${img.digest}?artifactType=application/vnd.dev.cosign`)
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType')
    const manifests = (JSON.parse(filtered.body.toString()) as { manifests: Array<{ digest: string }> }).manifests
    assert.deepEqual(manifests.map(m => m.digest), [sig.digest])
  })

  it('referrers without a referrers API upstream: the fallback tag sha256-<hex>, else an empty index', async () => {
    const img = hub.addImage('library/fallback', 'v1')
    const path = `/v2/library/fallback/referrers/${img.digest}`
    hub.fault(path, { kind: 'status', status: 404, body: '{"errors":[{"code":"UNSUPPORTED","message":"no referrers API"}]}' })
    const empty = await call(`/v2/fallback/referrers/${img.digest}`)
    assert.equal(empty.status, 200)
    assert.deepEqual(JSON.parse(empty.body.toString()), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] })
    const listed = { mediaType: OCI_MANIFEST, digest: sha256('sig'), size: 3, artifactType: 'application/vnd.dev.cosign' }
    hub.addManifest(
      'library/fallback',
      { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [listed] },
      OCI_INDEX,
      img.digest.replace(':', '-')
    )
    hub.fault(path, { kind: 'status', status: 404, body: '' })
    const fallback = await call(`/v2/fallback/referrers/${img.digest}`)
    assert.deepEqual((JSON.parse(fallback.body.toString()) as { manifests: unknown[] }).manifests, [listed])
  })
})
