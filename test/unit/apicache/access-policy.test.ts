import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { AccessPolicy } from '../../../src/apicache/access-policy.js'
import type { ApiRequest } from '../../../src/apicache/answer.js'
import { Scopes } from '../../../src/apicache/scope.js'
import { ACCESS_PROOF_TTL_MS } from '../../../src/apicache/constants.js'
import { StaticToken } from '../../../src/upstream/fleet-credential.js'
import { FakeApiUpstream } from '../fakes/api-upstream.js'
import { FakeClock } from '../fakes/clock.js'

const PUBLIC_REPO = JSON.stringify({ full_name: 'octo/hello', private: false, visibility: 'public' })
const PRIVATE_REPO = JSON.stringify({ full_name: 'octo/secret', private: true, visibility: 'private' })

describe('apicache access-policy: whose copy a request is answered from', () => {
  const upstream = new FakeApiUpstream().api
  const scopes = new Scopes(Buffer.from('unit-test-node-secret'))
  let clock: FakeClock

  beforeEach(() => {
    clock = new FakeClock()
  })

  const policy = (fleet = true): AccessPolicy =>
    new AccessPolicy({ scopes, fleet: new Map(fleet ? [['github', new StaticToken('fleet')]] : []), clock })
  const request = (path: string, authorization?: string): ApiRequest => ({
    upstream,
    path,
    headers: authorization === undefined ? {} : { authorization }
  })

  it("without a fleet credential every request is the client's own scope", () => {
    const d = policy(false).decide(request('/repos/octo/hello/issues', 'Bearer alice'))
    assert.equal(d.via, 'client')
    assert.equal(d.scope, scopes.of('Bearer alice'))
    assert.equal(d.resource, 'github /repos/octo/hello/issues')
    assert.equal(d.fleet, undefined)
  })

  it("with one, a path outside a repository is the client's; a repository not yet known is `unknown`", () => {
    const p = policy()
    assert.equal(p.decide(request('/user', 'Bearer alice')).via, 'client')
    const d = p.decide(request('/repos/octo/hello/issues'))
    assert.equal(d.via, 'unknown')
    assert.ok(d.fleet !== undefined)
  })

  it("a public repository: the areas anyone may read go to the fleet's copy, the others (hooks) stay the client's", () => {
    const p = policy()
    p.fleetAnswered(request('/repos/octo/hello'), 200, Buffer.from(PUBLIC_REPO))
    assert.equal(p.decide(request('/repos/octo/hello/issues')).via, 'fleet')
    assert.equal(p.decide(request('/repos/OCTO/Hello/issues')).via, 'fleet', 'names are case-insensitive')
    assert.equal(p.decide(request('/repos/octo/hello/hooks', 'Bearer bob')).via, 'client')
  })

  it("only the repository's own resource teaches its visibility", () => {
    const p = policy()
    p.fleetAnswered(request('/repos/octo/hello/issues'), 200, Buffer.from(PUBLIC_REPO))
    p.fleetAnswered(request('/repos/octo/hello?per_page=1'), 200, Buffer.from(PUBLIC_REPO))
    assert.equal(p.decide(request('/repos/octo/hello/issues')).via, 'unknown')
  })

  it("a private repository goes to the fleet's copy only for a client that proved access to that area, for ACCESS_PROOF_TTL_MS", () => {
    const p = policy()
    p.fleetAnswered(request('/repos/octo/secret'), 200, Buffer.from(PRIVATE_REPO))
    const alice = request('/repos/octo/secret/issues', 'Bearer alice')
    const d = p.decide(alice)
    assert.equal(d.via, 'client')
    p.clientAnswered(d, { cache: 'MISS', status: 200 })
    assert.equal(p.decide(alice).via, 'fleet')
    assert.equal(p.decide(request('/repos/octo/secret/pulls', 'Bearer alice')).via, 'client', 'another area is not proven')
    assert.equal(p.decide(request('/repos/octo/secret/issues', 'Bearer bob')).via, 'client')
    clock.advance(ACCESS_PROOF_TTL_MS)
    p.fleetAnswered(request('/repos/octo/secret'), 200, Buffer.from(PRIVATE_REPO))
    assert.equal(p.decide(alice).via, 'client', 'the proof expired')
  })

  it("a proof needs the client's own 2xx: not a HIT, an error, or an anonymous request", () => {
    const p = policy()
    p.fleetAnswered(request('/repos/octo/secret'), 200, Buffer.from(PRIVATE_REPO))
    const alice = request('/repos/octo/secret/issues', 'Bearer alice')
    p.clientAnswered(p.decide(alice), { cache: 'HIT', status: 200 })
    p.clientAnswered(p.decide(alice), { cache: 'MISS', status: 404 })
    const anon = request('/repos/octo/secret/issues')
    p.clientAnswered(p.decide(anon), { cache: 'MISS', status: 200 })
    assert.equal(p.decide(alice).via, 'client')
    assert.equal(p.decide(anon).via, 'client')
  })

  it("a repository the fleet can't see (404), or learned nothing of, is hidden: never the fleet's, even with a proof", () => {
    const p = policy()
    p.fleetAnswered(request('/repos/octo/gone'), 404, Buffer.from('{"message":"Not Found"}'))
    const d = p.decide(request('/repos/octo/gone/issues', 'Bearer alice'))
    p.clientAnswered(d, { cache: 'MISS', status: 200 })
    assert.equal(p.decide(request('/repos/octo/gone/issues', 'Bearer alice')).via, 'client')
    p.learnedNothing('github', 'octo/moved')
    assert.equal(p.decide(request('/repos/octo/moved')).via, 'client')
  })

  it('a repository body too large to read (streamed) says nothing; its error status still says hidden', () => {
    const p = policy()
    p.fleetAnswered(request('/repos/octo/huge'), 200, Readable.from([]))
    assert.equal(p.decide(request('/repos/octo/huge')).via, 'unknown')
    p.fleetAnswered(request('/repos/octo/huge'), 404, Readable.from([]))
    assert.equal(p.decide(request('/repos/octo/huge')).via, 'client')
  })

  it('credentialLabel: `fleet` for the fleet credential, `anon`, else 12 characters of the scope (never the token)', () => {
    const p = policy()
    assert.equal(p.credentialLabel('github', 'Bearer fleet'), 'fleet')
    assert.equal(p.credentialLabel('github', undefined), 'anon')
    assert.equal(p.credentialLabel('github', 'Bearer alice'), scopes.of('Bearer alice').slice(0, 12))
    assert.equal(
      p.credentialLabel('other', 'Bearer fleet'),
      scopes.of('Bearer fleet').slice(0, 12),
      'another upstream has no fleet credential'
    )
  })
})
