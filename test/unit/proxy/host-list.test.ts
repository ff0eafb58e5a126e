import assert from 'node:assert/strict'
import { HostList, normalizeHost } from '../../../src/proxy/host-list.js'
import { DEFAULT_INTERCEPT } from '../../../src/proxy/constants.js'

describe('HostList: CACHE_PROXY_INTERCEPT and CACHE_PROXY_ALLOW', () => {
  it('a name matches itself in any case and with a trailing dot; *.name matches subdomains only', () => {
    const list = HostList.parse(' ghcr.io, *.Example.com ,,')
    assert.deepEqual(list.entries, ['ghcr.io', '*.example.com'])
    assert.ok(list.matches('ghcr.io'))
    assert.ok(list.matches('GHCR.IO.'))
    assert.ok(!list.matches('pkg.ghcr.io'), 'an exact name is not a pattern')
    assert.ok(list.matches('a.example.com'))
    assert.ok(list.matches('b.a.example.com'))
    assert.ok(!list.matches('example.com'))
    assert.ok(!list.matches('badexample.com'))
    assert.ok(!list.matches('not a host'))
  })

  it('IP addresses are entries too (an allowlist may name one); never a pattern', () => {
    const list = HostList.parse('10.0.0.5,[::1]')
    assert.ok(list.matches('10.0.0.5'))
    assert.ok(list.matches('::1'))
    assert.throws(() => HostList.parse('*.10.0.0.5'), /entry "\*\.10\.0\.0\.5"/)
  })

  it('a malformed entry is refused, naming it', () => {
    for (const bad of ['http://ghcr.io', 'ghcr.io/v2', '-a.com', 'a..com', '*', '*.', 'a b']) {
      assert.throws(() => HostList.parse(`ghcr.io,${bad}`), RangeError, bad)
    }
  })

  it('the DNS name constraints cover the list: patterns become their parent name, IPs are left out', () => {
    const list = HostList.parse('ghcr.io,*.gcr.io,gcr.io,10.0.0.5')
    assert.deepEqual(list.dnsConstraints(), ['gcr.io', 'ghcr.io'])
  })

  it('the default list parses and covers the registries registry-mirrors does not', () => {
    const list = HostList.parse(DEFAULT_INTERCEPT)
    for (const host of [
      'registry-1.docker.io',
      'ghcr.io',
      'quay.io',
      'gcr.io',
      'us.gcr.io',
      'us-docker.pkg.dev',
      'registry.k8s.io',
      'public.ecr.aws',
      'mcr.microsoft.com',
      'registry.npmjs.org'
    ]) {
      assert.ok(list.matches(host), host)
    }
  })

  it('normalizeHost: lower case, no trailing dot, IPv6 unbracketed; undefined for what is no host', () => {
    assert.equal(normalizeHost('GHCR.io.'), 'ghcr.io')
    assert.equal(normalizeHost('[::1]'), '::1')
    assert.equal(normalizeHost(''), undefined)
    assert.equal(normalizeHost('a_b.com'), undefined)
  })
})
