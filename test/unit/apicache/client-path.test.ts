import assert from 'node:assert/strict'
import { ClientPath } from '../../../src/apicache/client-path.js'
import { CacheSemantics } from '../../../src/apicache/cache-semantics.js'
import { ResponseCache } from '../../../src/apicache/response-cache.js'
import type { RevalidationCandidate, CandidateQuery } from '../../../src/apicache/candidate-search.js'
import type { ApiGetOptions, ApiUpstream } from '../../../src/upstream/api-client.js'
import { apiHarness, type ApiHarness } from './harness.js'

const PATH = '/repos/octo/hello/issues'
const LAST_MODIFIED = 'Thu, 01 Jan 2026 00:00:00 GMT'

describe("ClientPath: requests answered under the client's own credential scope", () => {
  let h: ApiHarness
  let sent: Array<{ headers: Record<string, string>, options: ApiGetOptions | undefined }>
  let queries: CandidateQuery[]
  let candidate: RevalidationCandidate | undefined
  let path: ClientPath

  beforeEach(async () => {
    h = await apiHarness()
    h.fake.token('alice').repo('octo/hello').resource(PATH, { body: '[]' })
    sent = []
    queries = []
    candidate = undefined
    const semantics = new CacheSemantics({ clock: h.clock })
    const responses = new ResponseCache({
      store: h.store,
      records: h.records,
      stats: h.stats,
      semantics,
      swarm: { announce: () => {}, withdraw: () => {} },
      maxBody: 1234,
      clock: h.clock
    })
    path = new ClientPath({
      client: {
        get: async (upstream: ApiUpstream, p: string, headers: Record<string, string>, options?: ApiGetOptions) => {
          sent.push({ headers, options })
          return await h.fake.get(upstream, p, headers, options)
        }
      },
      responses,
      candidates: {
        find: async query => {
          queries.push(query)
          return candidate
        }
      },
      semantics,
      maxBody: 1234
    })
  })
  afterEach(async () => {
    await h.close()
  })

  const request = (headers: Record<string, string> = {}): { upstream: ApiUpstream, path: string, headers: Record<string, string> } => ({
    upstream: h.upstream,
    path: PATH,
    headers
  })

  it("reads the upstream body within maxBody (a longer one is streamed), with the client's own credential", async () => {
    const answer = await path.answer(request({ authorization: 'Bearer alice' }), h.scopes.of('Bearer alice'), true)
    assert.equal(answer.status, 200)
    assert.deepEqual(sent.map(s => [s.headers.authorization, s.options?.maxBytes]), [['Bearer alice', 1234]])
  })

  it("asks for a candidate for its scope with the client's own credential (no fleet identity), shared or not as told", async () => {
    const scope = h.scopes.of('Bearer alice')
    await path.answer(request({ authorization: 'Bearer alice' }), scope, false)
    assert.deepEqual(queries.map(q => [q.scope, q.identity, q.shared, q.own]), [[scope, undefined, false, undefined]])
  })

  it("a candidate's Last-Modified goes upstream (not another token's ETag); the 304 is REVALIDATED with its body", async () => {
    candidate = { status: 200, headers: { etag: 'W/"theirs"', 'last-modified': LAST_MODIFIED }, body: Buffer.from('[]'), ownEtag: false }
    h.clock.advance(1000)
    const answer = await path.answer(request({ authorization: 'Bearer alice' }), h.scopes.of('Bearer alice'), true)
    assert.equal(sent[0]?.headers['if-modified-since'], LAST_MODIFIED)
    assert.equal(sent[0]?.headers['if-none-match'], undefined)
    assert.equal(answer.cache, 'REVALIDATED')
  })
})
