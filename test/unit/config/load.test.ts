import assert from 'node:assert/strict'
import { loadConfig } from '../../../src/config/load.js'
import { OPTIONS } from '../../../src/config/options.js'
import { configError, literal } from './helpers.js'

describe('loadConfig: flags over environment over defaults, and the checks across options', () => {
  it('takes a flag over the environment, and the environment over the default', () => {
    const c = loadConfig({ maxSize: '1GB' }, { CACHE_MAX_SIZE: '2GB', CACHE_HTTP_ADDR: '0.0.0.0:1234' })
    assert.equal(c.maxSize, 1e9)
    assert.deepEqual(c.httpAddr, { host: '0.0.0.0', port: 1234 })
    assert.equal(c.upstreamTimeout, 30_000, 'neither: the default')
  })

  it('a valid flag hides a bad environment value: only what is used is checked', () => {
    assert.equal(loadConfig({ maxSize: '1GB' }, { CACHE_MAX_SIZE: 'lots' }).maxSize, 1e9)
  })

  it('names the flag, not the variable, when the bad value came from a flag', () => {
    assert.equal(
      configError({ CACHE_MAX_SIZE: '1GB' }, { maxSize: 'lots' }).message,
      'invalid --max-size="lots": expected a size of at least 1MB like 20GB, 512MiB or 1048576'
    )
  })

  it('a variable set but empty is read as empty, not as unset', () => {
    assert.equal(configError({ CACHE_MAX_SIZE: '' }).message, `invalid CACHE_MAX_SIZE="": expected ${OPTIONS.maxSize.expected}`)
    assert.equal(configError({}, { logLevel: '' }).message, `invalid --log-level="": expected ${OPTIONS.logLevel.expected}`)
  })

  it('with several bad values, names the first in the option table', () => {
    assert.match(configError({ CACHE_LOG_LEVEL: 'loud', CACHE_MAX_SIZE: 'lots' }).message, /^invalid CACHE_MAX_SIZE=/)
  })

  it('ignores variables of other programs and unknown CACHE_* variables (the CLI warns about those)', () => {
    assert.deepEqual(loadConfig({}, { PATH: '/bin', CACHE_MAXSIZE: 'garbage' }), loadConfig({}, {}))
  })

  it('listens on every interface at CACHE_P2P_PORT unless CACHE_LISTEN_ADDRS says otherwise', () => {
    assert.deepEqual(loadConfig({}, {}).listenAddrs.map(String), ['/ip4/0.0.0.0/tcp/9000'])
    assert.deepEqual(loadConfig({}, { CACHE_P2P_PORT: '9100' }).listenAddrs.map(String), ['/ip4/0.0.0.0/tcp/9100'])
    assert.deepEqual(
      loadConfig({}, { CACHE_P2P_PORT: '9100', CACHE_LISTEN_ADDRS: '/ip4/127.0.0.1/tcp/9200, /ip6/::1/tcp/9200' }).listenAddrs.map(String),
      ['/ip4/127.0.0.1/tcp/9200', '/ip6/::1/tcp/9200']
    )
  })

  describe('eviction watermarks', () => {
    it("a low watermark at or above the high one is the low one's fault", () => {
      assert.equal(
        configError({ CACHE_EVICT_LOW_WATERMARK: '95%' }).message,
        `invalid CACHE_EVICT_LOW_WATERMARK="95%": expected ${OPTIONS.evictLowWatermark.expected}`
      )
      assert.match(
        configError({ CACHE_EVICT_LOW_WATERMARK: '0.9' }).message,
        /^invalid CACHE_EVICT_LOW_WATERMARK="0\.9"/,
        'equal is not below'
      )
      assert.match(
        configError({ CACHE_EVICT_LOW_WATERMARK: '60%', CACHE_EVICT_HIGH_WATERMARK: '50%' }).message,
        /^invalid CACHE_EVICT_LOW_WATERMARK="60%"/
      )
    })

    it('a high watermark set at or below the default low one names the high one and the low default', () => {
      assert.equal(
        configError({ CACHE_EVICT_HIGH_WATERMARK: '70%' }).message,
        'invalid CACHE_EVICT_HIGH_WATERMARK="70%": expected a fraction in (0, 1] above CACHE_EVICT_LOW_WATERMARK (80%), such as 0.9 or 90%'
      )
    })

    it('accepts a high watermark below the default low one when the low one is set too', () => {
      const c = loadConfig({}, { CACHE_EVICT_HIGH_WATERMARK: '50%', CACHE_EVICT_LOW_WATERMARK: '40%' })
      assert.equal(c.evictHighWatermark, 0.5)
      assert.equal(c.evictLowWatermark, 0.4)
    })

    it('reads the watermarks from flags too, and shows the flag value in the error', () => {
      assert.match(configError({ CACHE_EVICT_LOW_WATERMARK: '10%' }, { evictLowWatermark: '95%' }).message, /="95%"/)
    })
  })

  describe('HTTPS listener (CACHE_HTTPS_ADDR, CACHE_TLS_CERT, CACHE_TLS_KEY)', () => {
    it('is off by default; an address with a certificate and a key loads', () => {
      assert.equal(loadConfig({}, {}).httpsAddr, undefined)
      const c = loadConfig({}, { CACHE_HTTPS_ADDR: '127.0.0.1:9443', CACHE_TLS_CERT: ' /c.pem ', CACHE_TLS_KEY: '/k.pem' })
      assert.deepEqual(c.httpsAddr, { host: '127.0.0.1', port: 9443 })
      assert.equal(c.tlsCert, '/c.pem')
      assert.equal(c.tlsKey, '/k.pem')
    })

    it('needs a certificate and a key with CACHE_HTTPS_ADDR', () => {
      assert.equal(
        configError({ CACHE_HTTPS_ADDR: '127.0.0.1:0' }).message,
        'invalid CACHE_TLS_CERT="": expected the path of a readable PEM certificate file (required with CACHE_HTTPS_ADDR)'
      )
      assert.match(
        configError({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: '/c.pem' }).message,
        /^invalid CACHE_TLS_KEY="": expected .*required with CACHE_HTTPS_ADDR/
      )
      assert.match(
        configError({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: '/c.pem', CACHE_TLS_KEY: '  ' }).message,
        /^invalid CACHE_TLS_KEY="  "/
      )
    })

    it('a certificate or key without CACHE_HTTPS_ADDR is a forgotten address, not ignored', () => {
      assert.match(
        configError({ CACHE_TLS_CERT: '/c.pem', CACHE_TLS_KEY: '/k.pem' }).message,
        /^invalid CACHE_HTTPS_ADDR="": expected host:port .*only used by the HTTPS listener/
      )
      assert.match(configError({}, { tlsKey: '/k.pem' }).message, /^invalid CACHE_HTTPS_ADDR=""/)
    })
  })

  describe('fleet credentials (CACHE_API_AUTH, CACHE_API_APP)', () => {
    it('a fleet token for an upstream that is not in CACHE_API_UPSTREAMS is an error, the token never shown', () => {
      const err = configError({ CACHE_API_AUTH: 'gitlab=ghp_secretvalue' })
      assert.equal(
        err.message,
        'invalid CACHE_API_AUTH entry for "gitlab": no such API upstream; expected names of CACHE_API_UPSTREAMS (github)'
      )
      assert.ok(!err.message.includes('ghp_secretvalue'))
    })

    it('a GitHub App for an unknown upstream, or for one that also has a token, is an error', () => {
      assert.match(
        configError({ CACHE_API_APP: 'gitlab=12:34:/k.pem' }).message,
        /^invalid CACHE_API_APP entry for "gitlab": no such API upstream; expected names of CACHE_API_UPSTREAMS \(github\)$/
      )
      assert.equal(
        configError({ CACHE_API_APP: 'github=12:34:/k.pem', CACHE_API_AUTH: 'github=t0ken' }).message,
        'invalid CACHE_API_APP entry for "github": also in CACHE_API_AUTH; expected one fleet credential per API upstream: CACHE_API_AUTH or CACHE_API_APP'
      )
    })

    it('one credential per upstream, of either kind, loads', () => {
      const c = loadConfig(
        {},
        {
          CACHE_API_UPSTREAMS: 'github=https://api.github.com,ghe=https://ghe.example.com/api/v3',
          CACHE_API_AUTH: 'github=t0ken',
          CACHE_API_APP: 'ghe=1:2:/k.pem'
        }
      )
      assert.equal(c.apiAuth.get('github'), 't0ken')
      assert.equal(c.apiApp.get('ghe')?.installationId, 2)
    })

    it('names the upstreams that exist when the credential names another', () => {
      const err = configError({ CACHE_API_UPSTREAMS: 'a=https://a.example,b=https://b.example', CACHE_API_AUTH: 'c=x' })
      assert.match(err.message, new RegExp(`${literal('expected names of CACHE_API_UPSTREAMS (a, b)')}$`))
    })
  })

  describe('the forward proxy (issue 24)', () => {
    it('off by default; the intercept list defaults to the registries and package hosts', () => {
      const c = loadConfig({}, {})
      assert.equal(c.proxyAddr, undefined)
      assert.ok(c.proxyIntercept.matches('ghcr.io') && c.proxyIntercept.matches('us-docker.pkg.dev'))
      assert.equal(c.proxyAllow.empty, true)
    })

    it('a loopback address loads; a shared one needs CACHE_PROXY_ALLOW (no open relay)', () => {
      assert.deepEqual(loadConfig({}, { CACHE_PROXY_ADDR: '127.0.0.1:3128' }).proxyAddr, { host: '127.0.0.1', port: 3128 })
      assert.match(
        configError({ CACHE_PROXY_ADDR: '0.0.0.0:3128' }).message,
        /^invalid CACHE_PROXY_ADDR="0\.0\.0\.0:3128": expected .*CACHE_PROXY_ALLOW.*open relay/
      )
      assert.match(configError({}, { proxyAddr: '10.0.0.5:3128' }).message, /^invalid CACHE_PROXY_ADDR/)
      assert.ok(
        loadConfig({}, { CACHE_PROXY_ADDR: '0.0.0.0:3128', CACHE_PROXY_ALLOW: 'ghcr.io,*.docker.io' }).proxyAllow.matches(
          'registry-1.docker.io'
        )
      )
    })

    it('a host list entry that is no host is named', () => {
      assert.equal(
        configError({ CACHE_PROXY_INTERCEPT: 'ghcr.io,https://quay.io' }).message,
        'invalid CACHE_PROXY_INTERCEPT entry "https://quay.io": not a host name (ghcr.io), a subdomain pattern (*.example.com) or an IP address; expected comma separated host names, `*.example.com` for subdomains'
      )
    })

    it('the CA files come both or neither', () => {
      assert.equal(
        configError({ CACHE_PROXY_CA_CERT: '/x/ca.crt' }).message,
        'invalid CACHE_PROXY_CA_CERT="/x/ca.crt": expected CACHE_PROXY_CA_KEY set too (the CA\'s certificate and key go together), or neither (the sidecar then makes its own CA in CACHE_DIR)'
      )
      assert.match(
        configError({}, { proxyCaKey: '/x/ca.key' }).message,
        /^invalid CACHE_PROXY_CA_KEY="\/x\/ca\.key": expected CACHE_PROXY_CA_CERT set too/
      )
    })
  })
})
