import assert from 'node:assert/strict'
import { endToEnd, ifNoneMatchMatches, rewriteUpstreamUrls, withoutRateLimit } from '../../../src/apicache/headers.js'

describe('apicache headers', () => {
  it('endToEnd drops hop-by-hop headers and those the Connection header names (RFC 9110 7.6.1)', () => {
    const out = endToEnd({
      connection: 'keep-alive, X-Trace',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'x-trace': '1',
      'proxy-authorization': 'Basic x',
      etag: '"a"'
    })
    assert.deepEqual(out, { etag: '"a"' })
  })

  it('endToEnd joins multi-valued headers (set-cookie by newline), lower-cases names and drops the given ones', () => {
    const out = endToEnd({ Accept: 'a', 'set-cookie': ['a=1', 'b=2'], vary: ['Accept', 'Authorization'], host: 'h' }, ['host'])
    assert.deepEqual(out, { accept: 'a', 'set-cookie': 'a=1\nb=2', vary: 'Accept, Authorization' })
  })

  it('rewriteUpstreamUrls replaces every occurrence of the upstream base, nothing else', () => {
    const link =
      '<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=3>; rel="last", <https://example.com/y>; rel="other"'
    assert.equal(
      rewriteUpstreamUrls(link, 'https://api.github.com', 'http://127.0.0.1:3000/github'),
      '<http://127.0.0.1:3000/github/x?page=2>; rel="next", <http://127.0.0.1:3000/github/x?page=3>; rel="last", <https://example.com/y>; rel="other"'
    )
  })

  it('ifNoneMatchMatches compares weakly, takes lists and *, and refuses other tags (RFC 9110 13.1.2)', () => {
    assert.equal(ifNoneMatchMatches('"abc"', 'W/"abc"'), true)
    assert.equal(ifNoneMatchMatches('W/"abc"', '"abc"'), true)
    assert.equal(ifNoneMatchMatches('"x", W/"abc" ', '"abc"'), true)
    assert.equal(ifNoneMatchMatches('*', '"abc"'), true)
    assert.equal(ifNoneMatchMatches('"abcd"', '"abc"'), false)
    assert.equal(ifNoneMatchMatches('"ABC"', '"abc"'), false, 'entity tags are case-sensitive')
  })

  it('withoutRateLimit removes only X-RateLimit-* headers', () => {
    assert.deepEqual(withoutRateLimit({ 'x-ratelimit-remaining': '1', 'x-ratelimit-reset': '2', 'x-github-request-id': 'r', etag: 'e' }), {
      'x-github-request-id': 'r',
      etag: 'e'
    })
  })
})
