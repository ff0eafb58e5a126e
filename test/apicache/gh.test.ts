import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { call, ISSUES_PATH, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'
import { ghMissing, startFakeGitHubProcess, type FakeGitHubProcess } from '../fixtures/fake-github-child.js'
import { freePort } from '../fixtures/ports.js'
import { must, Netns, netnsUnavailable, type RunResult } from '../fixtures/netns.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/** A token the fake knows (it may read acme/private); shaped like a real one, never valid anywhere. */
const TOKEN = 'ghp_p2pCacheGhCliTest0123456789abcdefAB'
/** Every gh run is killed after this long: a hang is a failure, not a stuck suite. */
const GH_TIMEOUT_MS = 30_000

/**
 * A self-signed certificate for 127.0.0.1 (the same one-liner as the README): gh is a Go
 * program and verifies the IP SAN; SSL_CERT_FILE makes it trust this certificate.
 */
async function selfSignedCert (dir: string): Promise<{ cert: string, key: string }> {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  await must('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert
  ])
  return { cert, key }
}

/** GET over HTTPS trusting `ca`: status, headers, body. */
function httpsGet (url: string, ca: Buffer): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, agent: false, timeout: 10_000, headers: { authorization: `token ${TOKEN}` } }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => {
        chunks.push(c)
      })
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
      })
      res.once('error', reject)
    })
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: no answer`)))
    req.once('error', reject)
    req.end()
  })
}

/**
 * The GitHub Enterprise Server layout on a sidecar whose `github` upstream is the fake
 * (127.0.0.1 only, no namespace needed): `/api/v3/<path>` and `/api/graphql`, over HTTP and
 * over the HTTPS listener, next to the sidecar's own /api/ routes.
 */
describe('API cache: GitHub Enterprise layout (/api/v3, /api/graphql)', function () {
  this.timeout(60_000)
  let gh: FakeGitHub
  let side: SidecarProcess
  let work: string
  let ca: Buffer
  let httpsUrl: string

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-ghe-'))
    const { cert, key } = await selfSignedCert(work)
    ca = readFileSync(cert)
    gh = await startFakeGitHub({ tokens: { [TOKEN]: { repos: ['acme/private'] } } })
    const httpsPort = await freePort()
    httpsUrl = `https://127.0.0.1:${httpsPort}`
    side = await startSidecar({
      CACHE_API_UPSTREAMS: `github=${gh.url}`,
      CACHE_HTTPS_ADDR: `127.0.0.1:${httpsPort}`,
      CACHE_TLS_CERT: cert,
      CACHE_TLS_KEY: key
    })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })

  after(async () => {
    await stopAll([side, gh])
    await rm(work, { recursive: true, force: true })
  })

  it('/api/v3/<path> is /github/<path>: same upstream request, same cache entry', async () => {
    const viaPrefix = await call(`${side.url}/github/repos/acme/public?layout=1`)
    const viaEnterprise = await call(`${side.url}/api/v3/repos/acme/public?layout=1`)
    assert.equal(viaPrefix.status, 200)
    assert.equal(viaEnterprise.status, 200)
    assert.equal(viaEnterprise.text, viaPrefix.text)
    assert.equal(viaPrefix.cache, 'MISS')
    assert.equal(viaEnterprise.cache, 'HIT', 'one cache for both layouts')
    assert.equal(gh.count({ path: '/repos/acme/public?layout=1' }), 1)
  })

  it('Link URLs come back in the layout and scheme the client used', async () => {
    const plain = await call(`${side.url}/api/v3${ISSUES_PATH}?per_page=2`)
    assert.equal(plain.status, 200)
    assert.match(plain.headers.get('link') ?? '', new RegExp(`^<${side.url}/api/v3${ISSUES_PATH}\\?page=2&per_page=2>; rel="next"`))
    const tls = await httpsGet(`${httpsUrl}/api/v3${ISSUES_PATH}?per_page=2`, ca)
    assert.equal(tls.status, 200)
    assert.match(String(tls.headers.link), new RegExp(`^<${httpsUrl}/api/v3${ISSUES_PATH}\\?page=2&per_page=2>; rel="next"`))
    assert.ok(!String(tls.headers.link).includes(gh.url), 'no upstream URL left')
    const prefixed = await httpsGet(`${httpsUrl}/github${ISSUES_PATH}?per_page=2`, ca)
    assert.match(String(prefixed.headers.link), new RegExp(`^<${httpsUrl}/github${ISSUES_PATH}\\?page=2&per_page=2>; rel="next"`))
  })

  it('POST /api/graphql passes through to <upstream>/graphql', async () => {
    const res = await call(`${side.url}/api/graphql`, {
      method: 'POST',
      headers: { authorization: `bearer ${TOKEN}` },
      body: JSON.stringify({ query: '{ viewer { login } }' })
    })
    assert.equal(res.status, 200)
    assert.equal(res.cache, 'PASS')
    assert.deepEqual(JSON.parse(res.text), { data: { viewer: { login: TOKEN } } })
    assert.equal(gh.count({ method: 'POST', path: '/graphql' }), 1)
  })

  it("the sidecar's own /api/ routes still answer, on both listeners; other /api/ paths are 404", async () => {
    assert.equal((await call(`${side.url}/api/cache/stats`)).status, 200)
    assert.equal((await httpsGet(`${httpsUrl}/api/cache/stats`, ca)).status, 200)
    assert.equal((await httpsGet(`${httpsUrl}/readyz`, ca)).status, 200)
    const p2p = await call(`${side.url}/api/p2p`)
    assert.equal(p2p.status, 404)
    assert.match(p2p.text, /CACHE_ENABLE_P2P=false/, 'admin route, not the API cache')
    const before = gh.count()
    for (const path of ['/api/nope', '/api/v3x/repos/acme/public', '/api/graphqlx', '/api', '/api/v2/repos/acme/public']) {
      const res = await call(`${side.url}${path}`)
      assert.equal(res.status, 404, path)
      assert.match(res.text, /no such endpoint/, path)
    }
    assert.equal(gh.count(), before, 'none of them reached the upstream')
  })
})

describe('API cache: GitHub Enterprise layout without a `github` upstream', function () {
  this.timeout(30_000)
  let side: SidecarProcess

  before(async () => {
    side = await startSidecar({ CACHE_API_UPSTREAMS: 'other=http://127.0.0.1:9' })
  })
  after(async () => {
    await stopAll([side])
  })

  it('/api/v3 and /api/graphql are 404', async () => {
    for (const path of ['/api/v3/repos/acme/public', '/api/graphql']) {
      const res = await call(`${side.url}${path}`)
      assert.equal(res.status, 404, path)
      assert.match(res.text, /no such endpoint/)
    }
  })
})

/**
 * The real gh CLI (Debian's gh) through the HTTPS listener, as a GitHub Enterprise host
 * (GH_HOST=127.0.0.1:<port>). gh, the sidecar and the fake GitHub all run in a network
 * namespace of this test's own with nothing but loopback: gh can't reach github.com or
 * anything else, whatever it tries.
 */
describe('API cache: the gh CLI through the sidecar', function () {
  this.timeout(120_000)
  let ns: Netns | undefined
  let fake: FakeGitHubProcess | undefined
  let side: SidecarProcess | undefined
  let work: string | undefined
  let httpsBase = ''
  let ghEnv: NodeJS.ProcessEnv = {}

  before(async function () {
    const why = await netnsUnavailable() ?? await ghMissing()
    if (why !== undefined) {
      skipUnlessCi(this, `${why} (gh must run in a network namespace with only loopback)`)
    }
    ns = await Netns.create('p2pc-gh')
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-gh-'))
    const { cert, key } = await selfSignedCert(work)
    fake = await startFakeGitHubProcess({ tokens: { [TOKEN]: { repos: ['acme/private'] } } }, { netns: ns })
    const httpsAddr = `127.0.0.1:${await freePort()}`
    httpsBase = `https://${httpsAddr}/api/v3`
    side = await startSidecar(
      { CACHE_API_UPSTREAMS: `github=${fake.url}`, CACHE_HTTPS_ADDR: httpsAddr, CACHE_TLS_CERT: cert, CACHE_TLS_KEY: key },
      { netns: ns }
    )
    ghEnv = {
      PATH: process.env.PATH,
      HOME: work,
      GH_HOST: httpsAddr,
      GH_ENTERPRISE_TOKEN: TOKEN,
      SSL_CERT_FILE: cert,
      GH_CONFIG_DIR: join(work, 'gh-config'),
      GH_NO_UPDATE_NOTIFIER: '1',
      GH_PROMPT_DISABLED: '1',
      NO_COLOR: '1'
    }
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
    if (this.currentTest?.state === 'failed' && fake !== undefined) process.stderr.write(`--- fake-github ---\n${fake.tail()}\n`)
  })

  after(async () => {
    await stopAll([side, fake])
    await ns?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  /** Runs gh in the namespace (killed after GH_TIMEOUT_MS); a non-zero exit fails the test. */
  const gh = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> => {
    if (ns === undefined) throw new Error('no namespace')
    const r = await ns.run('gh', args, { env: { ...ghEnv, ...env }, timeoutMs: GH_TIMEOUT_MS })
    assert.equal(
      r.code,
      0,
      `gh ${args.join(' ')} exited ${r.code}${r.code === -1 ? ` (killed after ${GH_TIMEOUT_MS} ms)` : ''}: ${r.stderr.trim()}`
    )
    return r
  }
  const upstream = (): FakeGitHubProcess => {
    if (fake === undefined) throw new Error('no fake')
    return fake
  }

  it('runs in a namespace whose only interface is loopback', async () => {
    const links = await ns?.must('ip', ['-o', 'link', 'show']) ?? ''
    assert.deepEqual(links.trim().split('\n').map(l => l.split(':')[1]?.trim()), ['lo'])
  })

  it('gh api repos/<owner>/<repo> twice: the repo JSON both times; the second is a free 304 upstream (REVALIDATED)', async () => {
    const first = await gh(['api', 'repos/acme/private'])
    assert.equal(JSON.parse(first.stdout).full_name, 'acme/private')
    const afterFirst = await upstream().rateLimit(TOKEN)
    const revalidations = (await side?.stats())?.revalidations_304 ?? NaN

    const second = await gh(['api', 'repos/acme/private'])
    assert.deepEqual(JSON.parse(second.stdout), JSON.parse(first.stdout))
    assert.equal(await upstream().rateLimit(TOKEN), afterFirst, 'the second call cost no rate limit')
    assert.equal((await side?.stats())?.revalidations_304, revalidations + 1)
    const seen = await upstream().requests({ path: '/repos/acme/private' })
    assert.deepEqual(seen.map(r => [r.token, r.ifNoneMatch !== undefined, r.status]), [[TOKEN, false, 200], [TOKEN, true, 304]])
  })

  it('gh api --paginate follows the rewritten Link (https, /api/v3) through the sidecar to the last page', async () => {
    // GH_DEBUG=api: gh prints every URL it requests, so where pagination went is visible.
    const r = await gh(['api', '--paginate', `${ISSUES_PATH.slice(1)}?per_page=2`, '--jq', '.[].number'], { GH_DEBUG: 'api' })
    assert.deepEqual(r.stdout.trim().split('\n'), ['6', '5', '4', '3', '2', '1'])
    const requested = [...r.stderr.matchAll(/^\* Request to (\S+)$/gm)].map(m => m[1])
    assert.deepEqual(requested, [
      `${httpsBase}${ISSUES_PATH}?per_page=2`,
      `${httpsBase}${ISSUES_PATH}?page=2&per_page=2`,
      `${httpsBase}${ISSUES_PATH}?page=3&per_page=2`
    ])
    assert.deepEqual((await upstream().requests({ pathIncludes: ISSUES_PATH })).map(x => [x.method, x.path]), [
      ['GET', `${ISSUES_PATH}?per_page=2`],
      ['GET', `${ISSUES_PATH}?page=2&per_page=2`],
      ['GET', `${ISSUES_PATH}?page=3&per_page=2`]
    ])
  })

  it('gh api -X POST passes through (X-Cache: PASS) with its body', async () => {
    const r = await gh(['api', '-i', '-X', 'POST', ISSUES_PATH.slice(1), '-f', 'title=from gh'])
    assert.match(r.stdout, /^HTTP\/1\.1 201 Created/)
    assert.match(r.stdout, /^X-Cache: PASS\r?$/m)
    assert.deepEqual(JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))), { title: 'from gh' })
    const posts = await upstream().requests({ method: 'POST', path: ISSUES_PATH })
    assert.deepEqual(posts.map(p => [p.token, JSON.parse(p.body ?? 'null')]), [[TOKEN, { title: 'from gh' }]])
  })

  it("gh api graphql goes to /api/graphql and through to the upstream's /graphql", async () => {
    const r = await gh(['api', 'graphql', '-f', 'query={ viewer { login } }'])
    assert.deepEqual(JSON.parse(r.stdout), { data: { viewer: { login: TOKEN } } })
    assert.equal(await upstream().count({ method: 'POST', path: '/graphql' }), 1)
  })
})
