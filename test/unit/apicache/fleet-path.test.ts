import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { FleetCredentialError, StaticToken, validatorIdentity, type FleetCredential } from '../../../src/upstream/fleet-credential.js'
import { FLEET_SCOPE, FLEET_WARN_INTERVAL_MS } from '../../../src/apicache/constants.js'
import { FleetPath, FleetUnusable } from '../../../src/apicache/fleet-path.js'
import { CacheSemantics } from '../../../src/apicache/cache-semantics.js'
import { ResponseCache } from '../../../src/apicache/response-cache.js'
import { CandidateSearch } from '../../../src/apicache/candidate-search.js'
import type { ApiRequest } from '../../../src/apicache/answer.js'
import { apiHarness, received, type ApiHarness } from './harness.js'

const ISSUES = '/repos/octo/hello/issues'
const ISSUES_BODY = JSON.stringify([{ number: 1, title: 'first issue' }])

/** A logger whose warnings the test can read. */
function capturedLog (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  const out = new Writable({
    write (chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'))
      cb()
    }
  })
  return { log: pino<never>({ level: 'warn' }, out), lines }
}

/** A fleet credential that records what the upstream refused. */
function recordingCredential (authorization: string | Error): FleetCredential & { refused: string[] } {
  const refused: string[] = []
  return {
    kind: 'token',
    refused,
    authorization: async () => {
      if (authorization instanceof Error) throw authorization
      return authorization
    },
    rejected: a => {
      refused.push(a)
    },
    owns: a => a === authorization
  }
}

describe('FleetPath: requests answered with the fleet credential', () => {
  let h: ApiHarness
  afterEach(async () => {
    await h.close()
  })

  describe('on its own (stored responses on a real store, no candidates from elsewhere)', () => {
    let captured: ReturnType<typeof capturedLog>
    let learned: Array<[string, number]>
    let path: FleetPath

    beforeEach(async () => {
      h = await apiHarness()
      h.fake.token('fleet').repo('octo/hello').resource(ISSUES, { body: ISSUES_BODY })
      captured = capturedLog()
      learned = []
      const semantics = new CacheSemantics({ clock: h.clock })
      const responses = new ResponseCache({
        store: h.store,
        records: h.records,
        stats: h.stats,
        semantics,
        swarm: { announce: () => {}, withdraw: () => {} },
        maxBody: 1024 * 1024,
        clock: h.clock
      })
      const candidates = new CandidateSearch({ records: h.records, bodies: responses, peers: { candidate: async () => undefined } })
      path = new FleetPath({
        client: h.client,
        responses,
        candidates,
        semantics,
        access: {
          fleetAnswered: (req, status) => {
            learned.push([req.path, status])
          }
        },
        maxBody: 1024 * 1024,
        log: captured.log,
        clock: h.clock
      })
    })

    const request = (p: string, headers: Record<string, string> = {}): ApiRequest => ({ upstream: h.upstream, path: p, headers })

    it("fetches with the fleet credential, not the client's; stores under the fleet scope with its validator identity; drops X-RateLimit-*", async () => {
      const answer = await received(await path.answer(request(ISSUES, { authorization: 'Bearer alice' }), new StaticToken('fleet')))
      assert.equal(answer.body.toString(), ISSUES_BODY)
      assert.equal(h.fake.log.at(-1)?.token, 'fleet')
      assert.deepEqual(Object.keys(answer.headers).filter(k => k.startsWith('x-ratelimit-')), [])
      const records = await h.records.all(`github ${ISSUES}`)
      assert.deepEqual(records.map(r => [r.scope, r.validator]), [[FLEET_SCOPE, validatorIdentity('Bearer fleet')]])
    })

    it("every answer for a repository's own resource is reported (its visibility); the fleet's error status is FleetUnusable", async () => {
      await path.answer(request('/repos/octo/hello'), new StaticToken('fleet'))
      await assert.rejects(path.answer(request('/repos/octo/nothing'), new StaticToken('fleet')), FleetUnusable)
      assert.deepEqual(learned, [['/repos/octo/hello', 200], ['/repos/octo/nothing', 404]])
    })

    it('a refused credential (401) is marked rejected and FleetUnusable, reported at most once per FLEET_WARN_INTERVAL_MS', async () => {
      const revoked = recordingCredential('Bearer revoked')
      for (let i = 0; i < 3; i++) await assert.rejects(path.answer(request(ISSUES), revoked), FleetUnusable)
      assert.deepEqual(revoked.refused, ['Bearer revoked', 'Bearer revoked', 'Bearer revoked'])
      assert.equal(captured.lines.length, 1)
      assert.match(captured.lines[0] ?? '', /CACHE_API_AUTH/)
      h.clock.advance(FLEET_WARN_INTERVAL_MS)
      await assert.rejects(path.answer(request(ISSUES), revoked), FleetUnusable)
      assert.equal(captured.lines.length, 2)
    })

    it("a credential that can't be had (a GitHub App that can't mint) is FleetUnusable and reported; nothing is sent", async () => {
      const broken = recordingCredential(new FleetCredentialError('github', 'installation 42 not found'))
      await assert.rejects(path.answer(request(ISSUES), broken), FleetUnusable)
      assert.equal(h.fake.count(), 0)
      assert.match(captured.lines.join(''), /installation 42 not found/)
    })
  })

  describe('through ApiResolver', () => {
    describe('with a fleet credential', () => {
      beforeEach(async () => {
        h = await apiHarness({ fleet: new StaticToken('fleet') })
        h.fake.token('fleet').token('alice').token('bob')
          .repo('octo/hello').resource(ISSUES, { body: ISSUES_BODY })
          .repo('octo/secret', { private: true, readers: ['fleet', 'alice'] }).resource('/repos/octo/secret/issues', {
            body: '["private issue"]'
          })
          .resource('/repos/octo/hello/hooks', { body: '["hook"]' })
      })

      it("a public repository's resources are fetched with the fleet credential and shared with every client", async () => {
        const alice = await h.ask(ISSUES, { authorization: 'Bearer alice' })
        assert.equal(alice.body.toString(), ISSUES_BODY)
        assert.equal(h.fake.count('alice'), 0, "the client's token was never spent")
        assert.deepEqual(h.fake.log.map(r => r.path), ['/repos/octo/hello', ISSUES], 'visibility learned, then the resource')
        assert.equal((await h.ask(ISSUES, { authorization: 'Bearer bob' })).cache, 'HIT')
        assert.equal((await h.ask(ISSUES)).cache, 'HIT')
        assert.equal(h.fake.count(), 2)
        const records = await h.records.all(`github ${ISSUES}`)
        assert.deepEqual(records.map(r => r.scope), [FLEET_SCOPE])
      })

      it("the fleet's stale copy is revalidated with the fleet's own ETag (a free 304)", async () => {
        await h.ask(ISSUES)
        h.clock.advance(61_000)
        const again = await h.ask(ISSUES)
        assert.equal(again.cache, 'REVALIDATED')
        const last = h.fake.log.at(-1)
        assert.equal(last?.token, 'fleet')
        assert.equal(last?.headers['if-none-match'], h.fake.etagFor(ISSUES, 'fleet'))
        assert.equal(last?.status, 304)
      })

      it("areas that need more than read access (hooks) are never served from the fleet's copy", async () => {
        await h.ask(ISSUES)
        const hooks = await h.ask('/repos/octo/hello/hooks', { authorization: 'Bearer bob' })
        assert.equal(hooks.cache, 'MISS')
        assert.equal(h.fake.log.at(-1)?.token, 'bob')
      })

      it("a private repository is served from the fleet's copy only to a client that proved access itself", async () => {
        const PRIVATE = '/repos/octo/secret/issues'
        const first = await h.ask(PRIVATE, { authorization: 'Bearer alice' })
        assert.equal(first.status, 200)
        assert.equal(h.fake.count('alice'), 1, 'alice proved access with her own request')
        await h.ask(PRIVATE, { authorization: 'Bearer alice' })
        const third = await h.ask(PRIVATE, { authorization: 'Bearer alice' })
        assert.equal(third.cache, 'HIT')
        assert.equal(h.fake.count('alice'), 1)
        const bob = await h.ask(PRIVATE, { authorization: 'Bearer bob' })
        assert.equal(bob.status, 404, "bob has no access: he gets GitHub's own answer")
        assert.ok(!bob.body.toString().includes('private issue'))
        const anon = await h.ask(PRIVATE)
        assert.equal(anon.status, 404)
      })

      it('a proof of access expires: after ACCESS_PROOF_TTL_MS the client must prove it again', async () => {
        const PRIVATE = '/repos/octo/secret/issues'
        await h.ask(PRIVATE, { authorization: 'Bearer alice' })
        await h.ask(PRIVATE, { authorization: 'Bearer alice' })
        h.fake.revoke('alice')
        h.clock.advance(10 * 60_000 + 1)
        const later = await h.ask(PRIVATE, { authorization: 'Bearer alice' })
        assert.equal(later.status, 401, 'the revoked token is asked again, and refused')
      })

      it("a refused fleet credential (401) falls back to the client's own, and is reported with what to check", async () => {
        await h.close()
        const captured = capturedLog()
        h = await apiHarness({ fleet: new StaticToken('revoked'), log: captured.log })
        h.fake.token('alice').repo('octo/hello').resource(ISSUES, { body: ISSUES_BODY })
        const answer = await h.ask(ISSUES, { authorization: 'Bearer alice' })
        assert.equal(answer.status, 200)
        assert.equal(answer.body.toString(), ISSUES_BODY)
        assert.equal(h.fake.count('alice'), 1)
        assert.match(captured.lines.join(''), /CACHE_API_AUTH/)
      })

      it("a fleet credential whose rate limit is spent falls back to the client's credential", async () => {
        h.fake.remaining('fleet', 0)
        const answer = await h.ask(ISSUES, { authorization: 'Bearer alice' })
        assert.equal(answer.status, 200)
        assert.equal(h.fake.log.at(-1)?.token, 'alice')
      })

      it('the fleet credential is labelled `fleet` in rate-limit metrics', () => {
        assert.equal(h.resolver.credentialLabel('github', 'Bearer fleet'), 'fleet')
      })
    })

    describe('bodies over maxBody, through a real ApiClient', () => {
      beforeEach(async () => {
        h = await apiHarness({ fleet: new StaticToken('fleet'), maxBody: 16, overHttp: true })
        h.fake.token('fleet').token('alice').repo('octo/hello').resource(ISSUES, { body: ISSUES_BODY })
      })

      it("a repository's own resource is still read whole (its visibility is in it): the fleet's copies are shared, streamed", async () => {
        const alice = await h.ask(ISSUES, { authorization: 'Bearer alice' })
        assert.equal(alice.streamed, true)
        assert.equal(alice.body.toString(), ISSUES_BODY)
        assert.equal(h.fake.count('alice'), 0, "the public repository was recognised: the client's token was never spent")
        assert.deepEqual(Object.keys(alice.headers).filter(k => k.startsWith('x-ratelimit-')), [])
        assert.deepEqual(await h.records.all(`github ${ISSUES}`), [], 'over maxBody: not stored')
      })
    })
  })
})
