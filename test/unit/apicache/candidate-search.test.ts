import assert from 'node:assert/strict'
import CachePolicy from 'http-cache-semantics'
import { CandidateSearch, type CandidateQuery } from '../../../src/apicache/candidate-search.js'
import type { ApiRecord, StoredResponse } from '../../../src/apicache/records.js'
import { sha256Digest, type Digest } from '../../../src/oci/digest.js'

const RESOURCE = 'github /repos/octo/hello'
const LAST_MODIFIED = 'Thu, 01 Jan 2026 00:00:00 GMT'
const policy = new CachePolicy({ url: '/', headers: {} }, { status: 200, headers: {} }).toObject()

function record (
  scope: string,
  body: string,
  opts: { accept?: string, etag?: boolean, lastModified?: boolean, validator?: string } = {}
): ApiRecord {
  const headers: Record<string, string> = {
    ...(opts.etag !== false ? { etag: `W/"${scope}"` } : {}),
    ...(opts.lastModified !== false ? { 'last-modified': LAST_MODIFIED } : {})
  }
  return {
    policy,
    status: 200,
    headers,
    body: sha256Digest(Buffer.from(body)),
    size: body.length,
    scope,
    accept: opts.accept ?? '',
    storedAt: 0,
    ...(opts.validator !== undefined ? { validator: opts.validator } : {})
  }
}

describe('apicache candidate-search: the stored copy a request revalidates upstream', () => {
  let records: ApiRecord[]
  let bodies: Map<Digest, Buffer>
  let peerAsked: CandidateQuery[]
  let search: CandidateSearch

  beforeEach(() => {
    records = []
    bodies = new Map()
    peerAsked = []
    search = new CandidateSearch({
      records: { all: async () => records },
      bodies: { readBody: async digest => bodies.get(digest) },
      peers: {
        candidate: async query => {
          peerAsked.push(query)
          return { status: 200, headers: { 'last-modified': LAST_MODIFIED }, body: Buffer.from('peer'), ownEtag: false, peer: 'peer-a' }
        }
      }
    })
  })

  function hold (...rs: Array<[ApiRecord, string]>): void {
    for (const [r, body] of rs) {
      records.push(r)
      bodies.set(r.body, Buffer.from(body))
    }
  }

  const query = (q: Partial<CandidateQuery>): CandidateQuery => ({
    resource: RESOURCE,
    accept: '',
    scope: 'mine',
    identity: undefined,
    own: undefined,
    shared: true,
    ...q
  })
  const own = (r: ApiRecord, body: string): StoredResponse => ({
    record: r,
    body: Buffer.from(body),
    policy: CachePolicy.fromObject(r.policy)
  })

  it("the scope's own copy comes first: its ETag is the client credential's own", async () => {
    hold([record('other', 'theirs'), 'theirs'])
    const c = await search.find(query({ own: own(record('mine', 'ours'), 'ours') }))
    assert.equal(c?.body.toString(), 'ours')
    assert.equal(c?.ownEtag, true)
    assert.deepEqual(peerAsked, [])
  })

  it("the fleet's own copy carries its ETag only when the credential about to be sent received it", async () => {
    const fetchedBy = (validator: string): StoredResponse => own(record('fleet', 'f', { validator }), 'f')
    assert.equal((await search.find(query({ scope: 'fleet', identity: 'id-1', own: fetchedBy('id-1') })))?.ownEtag, true)
    assert.equal(
      (await search.find(query({ scope: 'fleet', identity: 'id-2', own: fetchedBy('id-1') })))?.ownEtag,
      false,
      'a rotated installation token'
    )
  })

  it("else another scope's copy for the same Accept, revalidated by Last-Modified (never another token's ETag)", async () => {
    // The scope's own record is `own` (here: none fresh enough to be stored), not searched again.
    hold(
      [record('mine', 'ours'), 'ours'],
      [record('raw', 'raw', { accept: 'application/vnd.github.raw' }), 'raw'],
      [record('other', 'theirs'), 'theirs']
    )
    const c = await search.find(query({}))
    assert.equal(c?.body.toString(), 'theirs')
    assert.equal(c?.ownEtag, false)
  })

  it("a copy that can't be revalidated (an ETag the credential did not receive, no Last-Modified) is skipped; so is one whose body left", async () => {
    hold([record('a', 'etag only', { lastModified: false }), 'etag only'], [record('b', 'gone'), 'gone'])
    bodies.delete(records[1]?.body as Digest)
    const c = await search.find(query({}))
    assert.equal(c?.peer, 'peer-a', 'nothing local: the peers are asked')
    assert.equal(peerAsked.length, 1)
  })

  it("with a fleet identity, another scope's copy it fetched itself keeps its ETag", async () => {
    hold([record('other-node-fleet', 'f', { lastModified: false, validator: 'id-1' }), 'f'])
    const c = await search.find(query({ scope: 'fleet', identity: 'id-1' }))
    assert.equal(c?.body.toString(), 'f')
    assert.equal(c?.ownEtag, true)
  })

  it('a representation that depends on who asks (/user) is never taken from another scope or a peer', async () => {
    hold([record('other', 'theirs'), 'theirs'])
    assert.equal(await search.find(query({ shared: false })), undefined)
    assert.deepEqual(peerAsked, [])
  })
})
