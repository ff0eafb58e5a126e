import assert from 'node:assert/strict'
import { loadConfig } from '../../../src/config/load.js'
import { OPTIONS, RESERVED_API_NAMES } from '../../../src/config/options.js'
import { configError, literal } from './helpers.js'

/** The spec of the option read from the environment variable `env`. */
function specOf (env: string): { expected: string } {
  const spec = Object.values(OPTIONS).find(o => o.env === env)
  assert.ok(spec !== undefined, env)
  return spec
}

describe('config options: every CACHE_* value, its valid forms and its one-line error', () => {
  it('every option has a CACHE_* variable, a --flag and a description; names are unique', () => {
    const specs = Object.values(OPTIONS)
    for (const spec of specs) {
      assert.match(spec.env, /^CACHE_[A-Z0-9_]+$/)
      assert.match(spec.flag, /^--[a-z0-9-]+ <[^>]+>$/)
      assert.ok(spec.description.length > 0 && spec.expected.length > 0, spec.env)
    }
    assert.equal(new Set(specs.map(s => s.env)).size, specs.length)
    assert.equal(new Set(specs.map(s => s.flag.split(' ')[0])).size, specs.length)
  })

  it('the defaults load as documented', () => {
    const c = loadConfig({}, {})
    assert.equal(c.dir, './.p2p-cache')
    assert.equal(c.maxSize, 20e9)
    assert.deepEqual(c.httpAddr, { host: '127.0.0.1', port: 9080 })
    assert.equal(c.httpsAddr, undefined)
    assert.equal(c.enableP2p, true)
    assert.equal(c.mdns, false)
    assert.equal(c.p2pPort, 9000)
    assert.equal(c.p2pDataPort, 'auto')
    assert.equal(c.swarmKey, undefined)
    assert.equal(c.peerLookupTimeout, 1000)
    assert.equal(c.upstreamTimeout, 30_000)
    assert.equal(c.evictMinAge, 3_600_000)
    assert.equal(c.evictHighWatermark, 0.9)
    assert.equal(c.evictLowWatermark, 0.8)
    assert.equal(c.apiMaxBody, 10e6)
    assert.equal(c.logLevel, 'info')
    assert.deepEqual(c.registryUpstreams.map(u => [u.name, u.url.href]), [['docker.io', 'https://registry-1.docker.io/']])
    assert.deepEqual(c.apiUpstreams.map(u => [u.name, u.url.href]), [['github', 'https://api.github.com/']])
    assert.equal(c.apiAuth.size + c.apiApp.size + c.registryAuth.size, 0)
  })

  // [variable, value]: the whole value is shown, then what is expected.
  const invalid: Array<[string, string]> = [
    ['CACHE_DIR', '   '],
    ['CACHE_MAX_SIZE', '20XB'],
    ['CACHE_MAX_SIZE', '-1GB'],
    ['CACHE_MAX_SIZE', '999kB'],
    ['CACHE_MAX_SIZE', ''],
    ['CACHE_HTTP_ADDR', 'localhost'],
    ['CACHE_HTTP_ADDR', '127.0.0.1:99999'],
    ['CACHE_HTTP_ADDR', '[::1]'],
    ['CACHE_HTTP_ADDR', '::1:9080'],
    ['CACHE_HTTPS_ADDR', 'localhost'],
    ['CACHE_HTTP_HEADER_TIMEOUT', '99ms'],
    ['CACHE_HTTP_HEADER_TIMEOUT', '301s'],
    ['CACHE_HTTP_IDLE_TIMEOUT', '2h'],
    ['CACHE_HTTP_STALL_TIMEOUT', '10'],
    ['CACHE_HTTP_MAX_CONNECTIONS', '15'],
    ['CACHE_HTTP_MAX_CONNECTIONS', '1e3'],
    ['CACHE_ENABLE_P2P', 'maybe'],
    ['CACHE_MDNS', ''],
    ['CACHE_P2P_PORT', '70000'],
    ['CACHE_P2P_PORT', '-1'],
    ['CACHE_P2P_DATA_PORT', 'none'],
    ['CACHE_P2P_DATA_PORT', '65536'],
    ['CACHE_MAX_UPLOADS', '0'],
    ['CACHE_MAX_UPLOADS', '1025'],
    ['CACHE_API_MAX_BODY', '0'],
    ['CACHE_API_CONCURRENCY', 'many'],
    ['CACHE_PEER_LOOKUP_TIMEOUT', 'fast'],
    ['CACHE_PEER_LOOKUP_TIMEOUT', '9ms'],
    ['CACHE_PEER_FIRST_BYTE_TIMEOUT', '0s'],
    ['CACHE_PEER_FIRST_BYTE_TIMEOUT', '11m'],
    ['CACHE_UPSTREAM_TIMEOUT', '30d'],
    ['CACHE_UPSTREAM_TIMEOUT', 'soon'],
    ['CACHE_EVICT_MIN_AGE', '5'],
    ['CACHE_EVICT_HIGH_WATERMARK', '150%'],
    ['CACHE_EVICT_HIGH_WATERMARK', '0'],
    ['CACHE_EVICT_HIGH_WATERMARK', '-0.5'],
    ['CACHE_EVICT_LOW_WATERMARK', '95%'],
    ['CACHE_REGISTRY_UPSTREAMS', ''],
    ['CACHE_LOG_LEVEL', 'loud']
  ]
  for (const [name, value] of invalid) {
    it(`refuses ${name}=${JSON.stringify(value)} with one line naming it, the value and what is expected`, () => {
      const err = configError({ [name]: value })
      assert.equal(err.message, `invalid ${name}=${JSON.stringify(value)}: expected ${specOf(name).expected}`)
    })
  }

  // [variable, value, the entry the error names]: a list's error points at its bad entry.
  const badEntries: Array<[string, string, string]> = [
    ['CACHE_REGISTRY_UPSTREAMS', 'docker.io', 'docker.io'],
    ['CACHE_REGISTRY_UPSTREAMS', 'a=http://x,b=ftp://x', 'b=ftp://x'],
    ['CACHE_REGISTRY_UPSTREAMS', 'a=http://x a=http://y', 'a=http://y'],
    ['CACHE_REGISTRY_UPSTREAMS', 'a=not a url', 'a=not'],
    ['CACHE_LISTEN_ADDRS', '/ip4/127.0.0.1/tcp/9000,/dns4/x/tcp/1', '/dns4/x/tcp/1'],
    ['CACHE_ANNOUNCE_ADDRS', '10.0.0.1:9000', '10.0.0.1:9000'],
    ['CACHE_BOOTSTRAP_PEERS', '/ip4/127.0.0.1/udp/9000', '/ip4/127.0.0.1/udp/9000'],
    ['CACHE_BOOTSTRAP_PEERS', '/ip4/127.0.0.1/tcp/1/p2p/notapeerid', '/ip4/127.0.0.1/tcp/1/p2p/notapeerid'],
    ['CACHE_API_UPSTREAMS', 'github=https://api.github.com,v2=http://127.0.0.1:1', 'v2=http://127.0.0.1:1/'],
    ['CACHE_API_UPSTREAMS', 'gh:1=https://x', 'gh:1=https://x/'],
    ['CACHE_API_APP', 'github=12:x:/k.pem', 'github=12:x:/k.pem']
  ]
  for (const [name, value, entry] of badEntries) {
    it(`names the bad entry "${entry}" of ${name}, then what is expected`, () => {
      const err = configError({ [name]: value })
      assert.match(err.message, new RegExp(`^invalid ${name} entry "${literal(entry)}": .+; expected ${literal(specOf(name).expected)}$`))
    })
  }

  it('says why an upstream entry is bad: not name=url, listed twice, or not http(s)', () => {
    assert.match(configError({ CACHE_REGISTRY_UPSTREAMS: 'docker.io' }).message, /entry "docker\.io": not name=url;/)
    assert.match(configError({ CACHE_REGISTRY_UPSTREAMS: 'a=http://x,a=http://y' }).message, /entry "a=http:\/\/y": a is listed twice;/)
    assert.match(
      configError({ CACHE_REGISTRY_UPSTREAMS: 'a=ftp://x' }).message,
      /entry "a=ftp:\/\/x": not an http\(s\) URL with a plain name;/
    )
  })

  it('an API upstream may not take a path the sidecar serves itself', () => {
    for (const name of RESERVED_API_NAMES) {
      assert.match(
        configError({ CACHE_API_UPSTREAMS: `${name}=https://x` }).message,
        /the name is reserved or not a plain path segment/,
        name
      )
    }
  })

  it('reads upstream lists separated by commas or spaces, keeps their order and drops trailing slashes of paths', () => {
    const c = loadConfig(
      {},
      {
        CACHE_REGISTRY_UPSTREAMS: 'docker.io=https://registry-1.docker.io, ghcr.io=https://ghcr.io/\n127.0.0.1:5001=http://127.0.0.1:5001',
        CACHE_API_UPSTREAMS: 'github=https://ghe.example.com/api/v3/// gitlab=https://gitlab.com/api'
      }
    )
    assert.deepEqual(c.registryUpstreams.map(u => u.name), ['docker.io', 'ghcr.io', '127.0.0.1:5001'])
    assert.equal(c.registryUpstreams[1]?.url.href, 'https://ghcr.io/')
    assert.deepEqual(c.apiUpstreams.map(u => u.url.href), ['https://ghe.example.com/api/v3', 'https://gitlab.com/api'])
  })

  it('reads host:port addresses: IPv4, bracketed IPv6, a name, and :port for every interface', () => {
    const addr = (text: string): unknown => loadConfig({}, { CACHE_HTTP_ADDR: text }).httpAddr
    assert.deepEqual(addr('0.0.0.0:1234'), { host: '0.0.0.0', port: 1234 })
    assert.deepEqual(addr('[::1]:9080'), { host: '::1', port: 9080 })
    assert.deepEqual(addr('localhost:80'), { host: 'localhost', port: 80 })
    assert.deepEqual(addr(':9080'), { host: '0.0.0.0', port: 9080 })
    assert.deepEqual(addr(' 127.0.0.1:0 '), { host: '127.0.0.1', port: 0 })
    assert.equal(loadConfig({}, { CACHE_HTTPS_ADDR: '' }).httpsAddr, undefined, 'empty = no HTTPS listener')
  })

  it('reads booleans as true/1/yes/on and false/0/no/off in any case', () => {
    for (const text of ['true', 'TRUE', '1', 'yes', 'On', ' on ']) assert.equal(loadConfig({}, { CACHE_MDNS: text }).mdns, true, text)
    for (const text of ['false', 'False', '0', 'no', 'OFF']) assert.equal(loadConfig({}, { CACHE_ENABLE_P2P: text }).enableP2p, false, text)
  })

  it('reads ports 0-65535, and the data port as auto, off or a port', () => {
    assert.equal(loadConfig({}, { CACHE_P2P_PORT: '0' }).p2pPort, 0)
    assert.equal(loadConfig({}, { CACHE_P2P_PORT: '65535' }).p2pPort, 65535)
    assert.equal(loadConfig({}, { CACHE_P2P_DATA_PORT: 'AUTO' }).p2pDataPort, 'auto')
    assert.equal(loadConfig({}, { CACHE_P2P_DATA_PORT: 'off' }).p2pDataPort, 'off')
    assert.equal(loadConfig({}, { CACHE_P2P_DATA_PORT: ' 9001 ' }).p2pDataPort, 9001)
  })

  it('reads durations and counts at the edges of their ranges', () => {
    assert.equal(loadConfig({}, { CACHE_HTTP_HEADER_TIMEOUT: '100ms' }).httpHeaderTimeout, 100)
    assert.equal(loadConfig({}, { CACHE_HTTP_HEADER_TIMEOUT: '5m' }).httpHeaderTimeout, 300_000)
    assert.equal(loadConfig({}, { CACHE_PEER_LOOKUP_TIMEOUT: '10ms' }).peerLookupTimeout, 10)
    assert.equal(loadConfig({}, { CACHE_UPSTREAM_TIMEOUT: '24d' }).upstreamTimeout, 24 * 86_400_000, "just under setTimeout's limit")
    assert.equal(loadConfig({}, { CACHE_EVICT_MIN_AGE: '0s' }).evictMinAge, 0)
    assert.equal(loadConfig({}, { CACHE_HTTP_MAX_CONNECTIONS: '16' }).httpMaxConnections, 16)
    assert.equal(loadConfig({}, { CACHE_MAX_UPLOADS: '1024' }).maxUploads, 1024)
    assert.equal(loadConfig({}, { CACHE_MAX_SIZE: '1MB' }).maxSize, 1e6, 'the smallest store')
  })

  it('reads CACHE_P2P_MAX_UPLOAD_RATE as bytes per second in the size syntax; unlimited by default', () => {
    assert.equal(loadConfig({}, {}).p2pMaxUploadRate, undefined)
    assert.equal(loadConfig({}, { CACHE_P2P_MAX_UPLOAD_RATE: '50MB' }).p2pMaxUploadRate, 50e6)
    assert.equal(loadConfig({}, { CACHE_P2P_MAX_UPLOAD_RATE: '512KiB' }).p2pMaxUploadRate, 512 * 1024)
    assert.equal(loadConfig({}, { CACHE_P2P_MAX_UPLOAD_RATE: 'Unlimited' }).p2pMaxUploadRate, undefined)
    assert.equal(loadConfig({ p2pMaxUploadRate: '1MB' }, { CACHE_P2P_MAX_UPLOAD_RATE: '50MB' }).p2pMaxUploadRate, 1e6, 'the flag wins')
    for (const bad of ['fast', '-1MB', '1KB', '10 MB/s']) {
      assert.match(
        configError({ CACHE_P2P_MAX_UPLOAD_RATE: bad }).message,
        /CACHE_P2P_MAX_UPLOAD_RATE.*unlimited, or a size per second of at least 64KiB/
      )
    }
  })

  it('reads watermarks as fractions or percentages in (0, 1]', () => {
    assert.equal(loadConfig({}, { CACHE_EVICT_HIGH_WATERMARK: '1' }).evictHighWatermark, 1)
    assert.equal(loadConfig({}, { CACHE_EVICT_HIGH_WATERMARK: '0.95' }).evictHighWatermark, 0.95)
    assert.equal(loadConfig({}, { CACHE_EVICT_HIGH_WATERMARK: '100%' }).evictHighWatermark, 1)
    assert.equal(loadConfig({}, { CACHE_EVICT_LOW_WATERMARK: ' 50 % ' }).evictLowWatermark, 0.5)
  })

  it('reads the log level in any case, and lists the levels when it is wrong', () => {
    assert.equal(loadConfig({}, { CACHE_LOG_LEVEL: 'DEBUG' }).logLevel, 'debug')
    assert.match(configError({ CACHE_LOG_LEVEL: 'verbose' }).message, /expected fatal, error, warn, info, debug, trace, silent$/)
  })

  it('reads a swarm key as 64 hex characters or the three-line swarm.key text', () => {
    const hex = 'a'.repeat(64)
    const one = loadConfig({}, { CACHE_SWARM_KEY: hex }).swarmKey
    const three = loadConfig({}, { CACHE_SWARM_KEY: `/key/swarm/psk/1.0.0/\n/base16/\n${hex.toUpperCase()}\n` }).swarmKey
    assert.ok(one instanceof Uint8Array)
    assert.deepEqual(three, one)
    assert.equal(loadConfig({}, {}).swarmKey, undefined, 'unset: an open swarm')
  })

  it('never echoes a secret value, and refuses a swarm key that is set but empty instead of running an open swarm', () => {
    for (
      const [name, value] of [
        ['CACHE_REGISTRY_AUTH', 'docker.io=nopassword'],
        ['CACHE_SWARM_KEY', 'f00d'],
        ['CACHE_SWARM_KEY', '  ']
      ] as const
    ) {
      const err = configError({ [name]: value })
      assert.equal(err.message, `invalid ${name} (value not shown): expected ${specOf(name).expected}`)
    }
    assert.match(
      configError({ CACHE_SWARM_KEY: '' }).message,
      /^invalid CACHE_SWARM_KEY \(value not shown\): expected .*unset it for an open swarm/
    )
    assert.match(configError({}, { swarmKey: '' }).message, /^invalid --swarm-key \(value not shown\)/)
  })

  it('reads registry credentials; a password may contain colons', () => {
    const auth = loadConfig({}, { CACHE_REGISTRY_AUTH: 'docker.io=me:pa:ss ghcr.io=bot:t0k' }).registryAuth
    assert.deepEqual(auth.get('docker.io'), { username: 'me', password: 'pa:ss' })
    assert.deepEqual(auth.get('ghcr.io'), { username: 'bot', password: 't0k' })
  })

  it('a malformed or repeated CACHE_API_AUTH entry is named by its position, the token never shown', () => {
    const malformed = configError({ CACHE_API_AUTH: 'github=ghp_secret1 ghp_secretvalue2' })
    assert.match(malformed.message, /^invalid CACHE_API_AUTH entry 2: not name=token; expected /)
    assert.ok(!malformed.message.includes('ghp_secret'))
    const twice = configError({ CACHE_API_AUTH: 'github=ghp_a,github=ghp_b' })
    assert.match(twice.message, /^invalid CACHE_API_AUTH entry 2: github is listed twice; expected /)
    assert.ok(!twice.message.includes('ghp_'))
  })

  it('reads CACHE_API_APP entries as app id, installation id and key file', () => {
    const app = loadConfig({}, { CACHE_API_APP: 'github=12:34:/keys/app.pem' }).apiApp
    assert.deepEqual(app.get('github'), { appId: '12', installationId: 34, privateKeyFile: '/keys/app.pem' })
    assert.match(
      configError({ CACHE_API_APP: 'github=1:2:/a.pem github=3:4:/b.pem' }).message,
      /entry "github=3:4:\/b\.pem": the name is listed twice/
    )
  })
})
