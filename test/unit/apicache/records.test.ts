import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import CachePolicy from 'http-cache-semantics'
import { ApiRecords, type ApiRecord } from '../../../src/apicache/records.js'
import { sha256Digest, type Digest } from '../../../src/oci/digest.js'
import { apiKey } from '../../../src/keys/api-key.js'

function record (scope: string, body: Digest, opts: Partial<ApiRecord> = {}): ApiRecord {
  const policy = new CachePolicy({ url: '/x', method: 'GET', headers: {} }, { status: 200, headers: { 'cache-control': 'max-age=60' } })
    .toObject()
  return { policy, status: 200, headers: { etag: '"e"' }, body, size: 1, scope, accept: '', storedAt: 1, ...opts }
}

describe('apicache records: stored responses by resource, scope and Accept', () => {
  let dir: string
  let db: Level<string, unknown>
  let records: ApiRecords
  const A = sha256Digest(Buffer.from('a'))
  const B = sha256Digest(Buffer.from('b'))

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apirecords-unit-'))
    db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
    await db.open()
    records = new ApiRecords(db)
  })

  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a record is found by its resource, scope and Accept only', async () => {
    await records.put('github /x', record('anon', A))
    assert.equal((await records.get('github /x', 'anon', ''))?.body, A)
    assert.equal(await records.get('github /x', 'fleet', ''), undefined)
    assert.equal(await records.get('github /x', 'anon', 'application/vnd.github.raw'), undefined)
    assert.equal(await records.get('github /xy', 'anon', ''), undefined)
  })

  it('all() lists every scope of one resource, not of a resource that extends its path', async () => {
    await records.put('github /x', record('anon', A))
    await records.put('github /x', record('fleet', B))
    await records.put('github /x/y', record('anon', B))
    assert.deepEqual((await records.all('github /x')).map(r => r.scope).sort(), ['anon', 'fleet'])
  })

  it('a peer gets the newest record for the Accept, without scope or policy', async () => {
    await records.put('github /x', record('anon', A, { storedAt: 1 }))
    await records.put('github /x', record('fleet', B, { storedAt: 2, validator: 'v1' }))
    const answer = await records.forPeer(apiKey('github /x', ''))
    assert.deepEqual(answer, { status: 200, headers: { etag: '"e"' }, body: B, validator: 'v1' })
    assert.equal(await records.forPeer(apiKey('github /x', 'application/vnd.github.raw')), undefined)
    assert.equal(await records.forPeer('api:not a key' as `api:${string}`), undefined)
  })

  it('dropBody deletes the records a body held up and returns their swarm keys; a record since re-pointed survives', async () => {
    await records.put('github /x', record('anon', A))
    await records.put('github /y', record('anon', A, { accept: 'application/vnd.github.raw' }))
    await records.put('github /z', record('anon', A))
    await records.put('github /z', record('anon', B))
    const dropped = await records.dropBody(A)
    assert.deepEqual(dropped.map(d => d.key).sort(), [apiKey('github /x', ''), apiKey('github /y', 'application/vnd.github.raw')].sort())
    assert.equal(await records.get('github /x', 'anon', ''), undefined)
    assert.equal((await records.get('github /z', 'anon', ''))?.body, B)
    assert.deepEqual(await records.dropBody(A), [], 'the index entries went with them')
  })
})
