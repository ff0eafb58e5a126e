import assert from 'node:assert/strict'
import { UrlPatterns } from '../../../src/proxy/url-patterns.js'
import { DEFAULT_PATTERNS } from '../../../src/proxy/constants.js'

describe('CACHE_PROXY_PATTERNS: which URLs are immutable downloads', () => {
  const defaults = UrlPatterns.parse(DEFAULT_PATTERNS)

  it('the defaults match npm tarballs (scoped too), PyPI files and Go module zips, not metadata', () => {
    assert.ok(defaults.matches('registry.npmjs.org', '/left-pad/-/left-pad-1.3.0.tgz'))
    assert.ok(defaults.matches('registry.npmjs.org', '/@types/node/-/node-20.1.0.tgz'))
    assert.ok(defaults.matches('files.pythonhosted.org', '/packages/ab/cd/ef/requests-2.31.0-py3-none-any.whl'))
    assert.ok(defaults.matches('proxy.golang.org', '/github.com/pkg/errors/@v/v0.9.1.zip'))
    for (
      const [host, path] of [
        ['registry.npmjs.org', '/left-pad'],
        ['registry.npmjs.org', '/@types%2fnode'],
        ['proxy.golang.org', '/github.com/pkg/errors/@v/list'],
        ['proxy.golang.org', '/github.com/pkg/errors/@v/v0.9.1.mod'],
        ['pypi.org', '/simple/requests/'],
        ['evil.example', '/left-pad/-/left-pad-1.3.0.tgz']
      ] as const
    ) {
      assert.equal(defaults.matches(host, path), false, `${host}${path}`)
    }
  })

  it('* stays within one path segment, ** crosses them; *.host matches subdomains', () => {
    const p = UrlPatterns.parse('*.example.com/releases/*/app.tar.gz, dl.example.org/**.zip')
    assert.ok(p.matches('cdn.example.com', '/releases/v1/app.tar.gz'))
    assert.equal(p.matches('cdn.example.com', '/releases/v1/x/app.tar.gz'), false)
    assert.equal(p.matches('example.com', '/releases/v1/app.tar.gz'), false)
    assert.ok(p.matches('dl.example.org', '/a/b/c.zip'))
    assert.equal(p.matches('dl.example.org', '/a/b/czip'), false, 'the dot is literal')
  })

  it('an entry that is not host/path is refused, naming it; an empty list matches nothing', () => {
    for (const bad of ['registry.npmjs.org', 'bad host/x', 'a.example/x?y=1', '/only/a/path']) {
      assert.throws(
        () => UrlPatterns.parse(bad),
        (err: Error) => err instanceof RangeError && err.message.includes('is not host/path'),
        bad
      )
    }
    assert.ok(UrlPatterns.parse('').empty)
  })
})
