import assert from 'node:assert/strict'
import { apiTarget, publicSection, repositoryResource } from '../../../src/apicache/github-resource.js'

describe('apicache github-resource: what an API path names, for sharing it', () => {
  it('a repository path names the repository in lower case and its first section', () => {
    assert.deepEqual(apiTarget('/repos/Octo/Hello.js/issues/12?state=open'), { repo: 'octo/hello.js', section: 'issues', shared: true })
    assert.deepEqual(apiTarget('/repos/octo/hello'), { repo: 'octo/hello', section: '', shared: true })
    assert.deepEqual(apiTarget('/repos/octo/hello?x=1'), { repo: 'octo/hello', section: '', shared: true })
  })

  it('under actions the section is two segments (runs and secrets differ in who may read them)', () => {
    assert.equal(apiTarget('/repos/o/r/actions/runs/1/jobs').section, 'actions/runs')
    assert.equal(apiTarget('/repos/o/r/actions/secrets').section, 'actions/secrets')
  })

  it('public user profiles are shared; /user, search and notifications never are', () => {
    assert.deepEqual(apiTarget('/users/octocat'), { section: '', shared: true })
    for (const path of ['/user', '/user/repos', '/search/code?q=x', '/notifications', '/users/octocat/repos']) {
      assert.equal(apiTarget(path).shared, false, path)
      assert.equal(apiTarget(path).repo, undefined, path)
    }
  })

  it('only the areas anyone may read of a public repository count as public', () => {
    for (const s of ['', 'contents', 'issues', 'pulls', 'releases', 'actions/runs']) assert.equal(publicSection(s), true, s)
    for (const s of ['hooks', 'keys', 'collaborators', 'actions/secrets', 'actions/runners', 'settings']) {
      assert.equal(publicSection(s), false, s)
    }
  })

  it("a repository's own resource is /repos/{owner}/{repo} exactly (any case, no query)", () => {
    assert.equal(repositoryResource('/repos/Octo/Hello'), 'octo/hello')
    for (const path of ['/repos/octo/hello/issues', '/repos/octo/hello?per_page=1', '/repos/octo/hello/', '/users/octo']) {
      assert.equal(repositoryResource(path), undefined, path)
    }
  })
})
