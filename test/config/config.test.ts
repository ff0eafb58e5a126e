import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { loadConfig } from '../../src/config/load.js'
import { parseDuration, parseSize } from '../../src/config/units.js'
import { runCli } from '../fixtures/sidecar-process.js'

describe('configuration', () => {
  it('reads sizes and durations', () => {
    assert.equal(parseSize('20GB'), 20e9)
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2)
    assert.equal(parseSize('1048576'), 1048576)
    assert.equal(parseSize('1.5 GiB'), 1.5 * 1024 ** 3)
    assert.equal(parseSize('20XB'), undefined)
    assert.equal(parseDuration('10m'), 600_000)
    assert.equal(parseDuration('1500ms'), 1500)
    assert.equal(parseDuration('10'), undefined)
  })

  it('takes flags over env over defaults', () => {
    const c = loadConfig({ maxSize: '1GB' }, { CACHE_MAX_SIZE: '2GB', CACHE_HTTP_ADDR: '0.0.0.0:1234' })
    assert.equal(c.maxSize, 1e9)
    assert.deepEqual(c.httpAddr, { host: '0.0.0.0', port: 1234 })
    assert.equal(loadConfig({}, {}).registryUpstreams[0]?.name, 'docker.io')
    assert.deepEqual(loadConfig({}, { CACHE_HTTP_ADDR: '[::1]:9080' }).httpAddr, { host: '::1', port: 9080 })
    const ups = loadConfig({}, { CACHE_REGISTRY_UPSTREAMS: 'docker.io=https://registry-1.docker.io, ghcr.io=https://ghcr.io,127.0.0.1:5001=http://127.0.0.1:5001' }).registryUpstreams
    assert.deepEqual(ups.map(u => u.name), ['docker.io', 'ghcr.io', '127.0.0.1:5001'])
  })

  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  // [variable, value, the bad part a list error names (else the whole value is shown)]
  const invalid: Array<[string, string, string?]> = [
    ['CACHE_MAX_SIZE', '20XB'],
    ['CACHE_MAX_SIZE', '-1GB'],
    ['CACHE_HTTP_ADDR', 'localhost'],
    ['CACHE_HTTP_ADDR', '127.0.0.1:99999'],
    ['CACHE_HTTPS_ADDR', 'localhost'],
    ['CACHE_ENABLE_P2P', 'maybe'],
    ['CACHE_REGISTRY_UPSTREAMS', 'docker.io', 'docker.io'],
    ['CACHE_REGISTRY_UPSTREAMS', 'a=http://x,b=ftp://x', 'b=ftp://x'],
    ['CACHE_REGISTRY_UPSTREAMS', 'a=http://x,a=http://y', 'a=http://y'],
    ['CACHE_P2P_PORT', '70000'],
    ['CACHE_LISTEN_ADDRS', '/ip4/127.0.0.1/tcp/9000,/dns4/x/tcp/1', '/dns4/x/tcp/1'],
    ['CACHE_ANNOUNCE_ADDRS', '10.0.0.1:9000', '10.0.0.1:9000'],
    ['CACHE_BOOTSTRAP_PEERS', '/ip4/127.0.0.1/udp/9000', '/ip4/127.0.0.1/udp/9000'],
    ['CACHE_BOOTSTRAP_PEERS', '/ip4/127.0.0.1/tcp/1/p2p/notapeerid', '/ip4/127.0.0.1/tcp/1/p2p/notapeerid'],
    ['CACHE_MAX_UPLOADS', '0'],
    ['CACHE_API_UPSTREAMS', 'github=https://api.github.com,v2=http://127.0.0.1:1', 'v2=http://127.0.0.1:1/'],
    ['CACHE_PEER_LOOKUP_TIMEOUT', 'fast'],
    ['CACHE_PEER_FIRST_BYTE_TIMEOUT', '0s'],
    ['CACHE_UPSTREAM_TIMEOUT', '30d'],
    ['CACHE_UPSTREAM_TIMEOUT', 'soon'],
    ['CACHE_EVICT_MIN_AGE', '5'],
    ['CACHE_EVICT_HIGH_WATERMARK', '150%'],
    ['CACHE_EVICT_LOW_WATERMARK', '95%'],
    ['CACHE_LOG_LEVEL', 'loud']
  ]
  for (const [name, value, entry] of invalid) {
    it(`stops start-up on ${name}=${value} with one line and exit code 2`, async () => {
      const { code, stderr } = await runCli(['serve'], { CACHE_ENABLE_P2P: 'false', [name]: value, CACHE_DIR: '/nonexistent/never-created' })
      assert.equal(code, 2)
      const lines = stderr.trim().split('\n')
      assert.equal(lines.length, 1, `one line, got: ${stderr}`)
      const named = entry === undefined ? `="${escape(value)}": expected` : ` entry "${escape(entry)}": .+; expected`
      assert.match(lines[0] ?? '', new RegExp(`^p2p-cache: invalid ${name}${named} .+`))
    })
  }

  const secrets: Array<[string, string]> = [['CACHE_REGISTRY_AUTH', 'docker.io=nopassword'], ['CACHE_SWARM_KEY', 'f00d']]
  for (const [name, value] of secrets) {
    it(`does not echo the secret ${name} in its error`, async () => {
      const { code, stderr } = await runCli(['serve'], { CACHE_ENABLE_P2P: 'false', [name]: value, CACHE_DIR: '/nonexistent/never-created' })
      assert.equal(code, 2)
      assert.match(stderr.trim(), new RegExp(`^p2p-cache: invalid ${name} \\(value not shown\\): expected .+$`))
      assert.ok(!stderr.includes(value))
    })
  }

  describe('fleet credentials (CACHE_API_AUTH, CACHE_API_APP)', () => {
    const run = async (env: Record<string, string>): Promise<{ code: number | null, stderr: string }> =>
      await runCli(['serve'], { CACHE_ENABLE_P2P: 'false', CACHE_DIR: '/nonexistent/never-created', ...env })

    it('a malformed CACHE_API_AUTH entry is named by its position, the token never shown', async () => {
      const { code, stderr } = await run({ CACHE_API_AUTH: 'github=ghp_secret1 ghp_secretvalue2' })
      assert.equal(code, 2)
      assert.match(stderr.trim(), /^p2p-cache: invalid CACHE_API_AUTH entry 2: not name=token; expected /)
      assert.ok(!stderr.includes('ghp_secret'))
    })

    it('a fleet credential for an upstream that is not in CACHE_API_UPSTREAMS is an error, the token never shown', async () => {
      const { code, stderr } = await run({ CACHE_API_AUTH: 'gitlab=ghp_secretvalue' })
      assert.equal(code, 2)
      assert.match(stderr.trim(), /^p2p-cache: invalid CACHE_API_AUTH entry for "gitlab": no such API upstream; expected names of CACHE_API_UPSTREAMS \(github\)$/)
      assert.ok(!stderr.includes('ghp_secretvalue'))
    })

    it('CACHE_API_APP: a bad entry, both kinds for one upstream, and an unreadable or non-PEM key file', async () => {
      const bad = await run({ CACHE_API_APP: 'github=12:x:/k.pem' })
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /invalid CACHE_API_APP entry "github=12:x:\/k.pem": not name=<app id>:<installation id>:<private key file>/)
      const both = await run({ CACHE_API_APP: 'github=12:34:/k.pem', CACHE_API_AUTH: 'github=t0ken' })
      assert.match(both.stderr, /invalid CACHE_API_APP entry for "github": also in CACHE_API_AUTH/)
      const missing = await run({ CACHE_API_APP: 'github=12:34:/nonexistent/app.pem' })
      assert.equal(missing.code, 2)
      assert.match(missing.stderr, /invalid CACHE_API_APP file "\/nonexistent\/app.pem" cannot be read \(ENOENT\)/)
      const notPem = await run({ CACHE_API_APP: `github=12:34:${fileURLToPath(import.meta.url)}` })
      assert.match(notPem.stderr, /is not a PEM private key/)
    })
  })

  it('refuses a swarm key that is set but empty instead of running an open swarm', async () => {
    const { code, stderr } = await runCli(['serve'], { CACHE_ENABLE_P2P: 'false', CACHE_SWARM_KEY: '', CACHE_DIR: '/nonexistent/never-created' })
    assert.equal(code, 2)
    assert.match(stderr.trim(), /^p2p-cache: invalid CACHE_SWARM_KEY \(value not shown\): expected .*unset it for an open swarm/)
  })

  describe('HTTPS listener (CACHE_HTTPS_ADDR, CACHE_TLS_CERT, CACHE_TLS_KEY)', () => {
    let dir: string
    const pair = async (name: string): Promise<{ cert: string, key: string }> => {
      const cert = join(dir, `${name}.crt`)
      const key = join(dir, `${name}.key`)
      await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert])
      return { cert, key }
    }
    const serve = async (env: NodeJS.ProcessEnv): Promise<string> => {
      const { code, stderr } = await runCli(['serve'], { CACHE_ENABLE_P2P: 'false', CACHE_DIR: join(dir, 'data'), CACHE_HTTP_ADDR: '127.0.0.1:0', ...env })
      assert.equal(code, 2, stderr)
      const lines = stderr.trim().split('\n')
      assert.equal(lines.length, 1, `one line, got: ${stderr}`)
      return lines[0] ?? ''
    }

    before(async () => { dir = await mkdtemp(join(tmpdir(), 'p2p-cache-tls-')) })
    after(async () => { await rm(dir, { recursive: true, force: true }) })

    it('is off by default; an address parses', () => {
      assert.equal(loadConfig({}, {}).httpsAddr, undefined)
      const c = loadConfig({}, { CACHE_HTTPS_ADDR: '127.0.0.1:9443', CACHE_TLS_CERT: '/c.pem', CACHE_TLS_KEY: '/k.pem' })
      assert.deepEqual(c.httpsAddr, { host: '127.0.0.1', port: 9443 })
      assert.equal(c.tlsCert, '/c.pem')
    })

    it('needs a certificate and a key with CACHE_HTTPS_ADDR, and an address with them', async () => {
      assert.match(await serve({ CACHE_HTTPS_ADDR: '127.0.0.1:0' }), /^p2p-cache: invalid CACHE_TLS_CERT="": expected the path of a readable PEM certificate file \(required with CACHE_HTTPS_ADDR\)$/)
      assert.match(await serve({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: '/c.pem' }), /^p2p-cache: invalid CACHE_TLS_KEY="": expected .*required with CACHE_HTTPS_ADDR/)
      assert.match(await serve({ CACHE_TLS_CERT: '/c.pem', CACHE_TLS_KEY: '/k.pem' }), /^p2p-cache: invalid CACHE_HTTPS_ADDR="": expected host:port .*only used by the HTTPS listener/)
    })

    it('stops start-up on a missing, unparsable or mismatched file, naming it', async () => {
      const a = await pair('a')
      const b = await pair('b')
      const missing = join(dir, 'missing.pem')
      assert.match(await serve({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: missing, CACHE_TLS_KEY: a.key }),
        new RegExp(`^p2p-cache: invalid CACHE_TLS_CERT file "${escape(missing)}" cannot be read \\(ENOENT\\); expected .+`))
      assert.match(await serve({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: a.key, CACHE_TLS_KEY: a.key }),
        new RegExp(`^p2p-cache: invalid CACHE_TLS_CERT file "${escape(a.key)}" is not a PEM certificate`))
      assert.match(await serve({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: a.cert, CACHE_TLS_KEY: a.cert }),
        new RegExp(`^p2p-cache: invalid CACHE_TLS_KEY file "${escape(a.cert)}" is not an unencrypted PEM private key`))
      assert.match(await serve({ CACHE_HTTPS_ADDR: '127.0.0.1:0', CACHE_TLS_CERT: a.cert, CACHE_TLS_KEY: b.key }),
        new RegExp(`^p2p-cache: invalid CACHE_TLS_KEY file "${escape(b.key)}" is not the private key of the certificate in CACHE_TLS_CERT`))
    })
  })

  it('names the flag when the bad value came from a flag', async () => {
    const { code, stderr } = await runCli(['serve', '--max-size', 'lots'], { CACHE_ENABLE_P2P: 'false' })
    assert.equal(code, 2)
    assert.equal(stderr.trim(), 'p2p-cache: invalid --max-size="lots": expected a size of at least 1MB like 20GB, 512MiB or 1048576')
  })
})
