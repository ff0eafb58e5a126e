import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { CacheSemantics } from '../../../src/apicache/cache-semantics.js'
import { ResponseCache } from '../../../src/apicache/response-cache.js'
import type { ApiRequest } from '../../../src/apicache/answer.js'
import { apiKey, type ApiKey } from '../../../src/keys/api-key.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { apiHarness, type ApiHarness } from './harness.js'

const PATH = '/repos/octo/hello/issues'
const RESOURCE = `github ${PATH}`
const BODY = Buffer.from('[{"number":1}]')

describe('apicache response-cache: stored API responses', () => {
  let h: ApiHarness
  let cache: ResponseCache
  let semantics: CacheSemantics
  let announced: string[]
  let withdrawn: ApiKey[]

  beforeEach(async () => {
    h = await apiHarness()
    announced = []
    withdrawn = []
    semantics = new CacheSemantics({ clock: h.clock })
    cache = new ResponseCache({
      store: h.store,
      records: h.records,
      stats: h.stats,
      semantics,
      swarm: {
        announce: (resource, accept) => {
          announced.push(`${resource}#${accept}`)
        },
        withdraw: key => {
          withdrawn.push(key)
        }
      },
      maxBody: 64,
      clock: h.clock
    })
  })
  afterEach(async () => {
    await h.close()
  })

  const request = (headers: Record<string, string> = {}): ApiRequest => ({ upstream: h.upstream, path: PATH, headers })
  const upstreamHeaders = (extra: Record<string, string> = {}): Record<string, string> => ({
    date: new Date(h.clock.now()).toUTCString(),
    'cache-control': 'public, max-age=60',
    'content-length': String(BODY.byteLength),
    etag: 'W/"1"',
    ...extra
  })

  it('a storable 200 is stored (body, record, memory) and announced; it is then found without the disk', async () => {
    const answer = await cache.fresh(RESOURCE, 'anon', semantics.policyRequest(request(), 'anon'), {
      status: 200,
      headers: upstreamHeaders(),
      body: BODY
    }, undefined)
    assert.equal(answer.cache, 'MISS')
    assert.equal(answer.headers['content-length'], undefined, 'the sender sets its own')
    assert.deepEqual(announced, [`${RESOURCE}#`])
    assert.ok(cache.inMemory(RESOURCE, 'anon', '') !== undefined)
    assert.equal((await cache.stored(RESOURCE, 'anon', ''))?.body.toString(), BODY.toString())
    assert.equal((await h.records.all(RESOURCE)).length, 1)
  })

  it('not stored: a non-200, a no-store, a body over maxBody; a streamed (oversize) answer keeps its Content-Length', async () => {
    const q = semantics.policyRequest(request(), 'anon')
    await cache.fresh(RESOURCE, 'anon', q, { status: 404, headers: upstreamHeaders(), body: BODY }, undefined)
    await cache.fresh(
      RESOURCE,
      'anon',
      q,
      { status: 200, headers: upstreamHeaders({ 'cache-control': 'no-store' }), body: BODY },
      undefined
    )
    await cache.fresh(RESOURCE, 'anon', q, { status: 200, headers: upstreamHeaders(), body: Buffer.alloc(65) }, undefined)
    const streamed = await cache.fresh(RESOURCE, 'anon', q, {
      status: 200,
      headers: upstreamHeaders({ 'content-length': '100000' }),
      oversize: true,
      body: Readable.from([Buffer.from('x')])
    }, undefined)
    assert.equal(streamed.headers['content-length'], '100000')
    assert.ok(!Buffer.isBuffer(streamed.body))
    streamed.body.destroy()
    assert.deepEqual(await h.records.all(RESOURCE), [])
    assert.deepEqual(announced, [])
  })

  it("a 304 updates the candidate's headers (RFC 9111 4.3.4), stores its body under the scope and counts the revalidation", async () => {
    const candidate = {
      status: 200,
      headers: { etag: 'W/"1"', 'cache-control': 'public, max-age=60', 'x-ratelimit-remaining': '10' },
      body: BODY,
      ownEtag: false,
      peer: 'peer-a'
    }
    const answer = await cache.revalidated(
      RESOURCE,
      'abc',
      semantics.policyRequest(request({ authorization: 'Bearer x' }), 'abc'),
      candidate,
      { headers: upstreamHeaders({ 'x-ratelimit-remaining': '9', 'content-length': '0' }) },
      'id-1'
    )
    assert.equal(answer.cache, 'REVALIDATED')
    assert.equal(answer.peer, 'peer-a')
    assert.equal(answer.headers['x-ratelimit-remaining'], '9')
    assert.equal(answer.headers['content-length'], undefined)
    assert.equal(h.stats.snapshot().revalidations_304, 1)
    const [record] = await h.records.all(RESOURCE)
    assert.equal(record?.scope, 'abc')
    assert.equal(record?.validator, 'id-1')
  })

  it('when a body leaves the blob store its records go, from memory too, and are withdrawn from the swarm', async () => {
    await cache.fresh(
      RESOURCE,
      'anon',
      semantics.policyRequest(request(), 'anon'),
      { status: 200, headers: upstreamHeaders(), body: BODY },
      undefined
    )
    await cache.forgetBody(sha256Digest(BODY))
    assert.equal(cache.inMemory(RESOURCE, 'anon', ''), undefined)
    assert.equal(await cache.stored(RESOURCE, 'anon', ''), undefined)
    assert.deepEqual(withdrawn, [apiKey(RESOURCE, '')])
  })

  it('a record whose body is gone is not a stored response', async () => {
    await cache.fresh(
      RESOURCE,
      'anon',
      semantics.policyRequest(request(), 'anon'),
      { status: 200, headers: upstreamHeaders(), body: BODY },
      undefined
    )
    const fresh = new ResponseCache({
      store: h.store,
      records: h.records,
      stats: h.stats,
      semantics,
      swarm: { announce: () => {}, withdraw: () => {} },
      maxBody: 64,
      clock: h.clock
    })
    assert.equal((await fresh.stored(RESOURCE, 'anon', ''))?.record.status, 200, 'read from disk: a new cache has nothing in memory')
    await h.store.delete(sha256Digest(BODY))
    assert.equal(await fresh.readBody(sha256Digest(BODY)), undefined)
    assert.equal(await fresh.stored(RESOURCE, 'anon', ''), undefined)
  })
})
