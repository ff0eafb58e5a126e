import assert from 'node:assert/strict'
import { RepositoryAccess, visibilityOf } from '../../../src/apicache/repository-access.js'
import { ACCESS_PROOF_TTL_MS, HIDDEN_TTL_MS, VISIBILITY_TTL_MS } from '../../../src/apicache/constants.js'
import { FakeClock } from '../fakes/clock.js'

describe('apicache repository-access: who may be given a stored repository response', () => {
  it('a learned visibility is believed for VISIBILITY_TTL_MS, then must be learned again', () => {
    const clock = new FakeClock()
    const access = new RepositoryAccess(clock)
    assert.equal(access.visibility('github', 'o/r'), undefined)
    access.learn('github', 'o/r', 'public')
    clock.advance(VISIBILITY_TTL_MS - 1)
    assert.equal(access.visibility('github', 'o/r'), 'public')
    clock.advance(1)
    assert.equal(access.visibility('github', 'o/r'), undefined)
  })

  it('a hidden repository is asked about again only after HIDDEN_TTL_MS (a 404 costs a request)', () => {
    const clock = new FakeClock()
    const access = new RepositoryAccess(clock)
    access.learn('github', 'o/r', 'hidden')
    clock.advance(VISIBILITY_TTL_MS * 2)
    assert.equal(access.visibility('github', 'o/r'), 'hidden')
    clock.advance(HIDDEN_TTL_MS)
    assert.equal(access.visibility('github', 'o/r'), undefined)
  })

  it('a proof covers its area and the repository itself, not other areas, scopes or upstreams; it expires', () => {
    const clock = new FakeClock()
    const access = new RepositoryAccess(clock)
    access.prove('scope1', 'github', 'o/r', 'issues')
    assert.equal(access.proven('scope1', 'github', 'o/r', 'issues'), true)
    assert.equal(access.proven('scope1', 'github', 'o/r', ''), true)
    assert.equal(access.proven('scope1', 'github', 'o/r', 'pulls'), false)
    assert.equal(access.proven('scope2', 'github', 'o/r', 'issues'), false)
    assert.equal(access.proven('scope1', 'ghes', 'o/r', 'issues'), false)
    clock.advance(ACCESS_PROOF_TTL_MS)
    assert.equal(access.proven('scope1', 'github', 'o/r', 'issues'), false)
  })

  it("visibilityOf reads GitHub's repository JSON; anything else is hidden", () => {
    assert.equal(visibilityOf(200, Buffer.from('{"private":false}')), 'public')
    assert.equal(visibilityOf(200, Buffer.from('{"visibility":"public"}')), 'public')
    assert.equal(visibilityOf(200, Buffer.from('{"private":true,"visibility":"internal"}')), 'private')
    assert.equal(visibilityOf(200, Buffer.from('not json')), 'hidden')
    assert.equal(visibilityOf(200, Buffer.from('{}')), 'hidden')
    assert.equal(visibilityOf(404, Buffer.from('{"private":false}')), 'hidden')
  })
})
