import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, loggedKeys, startSwarmNode, stopAll, waitForPeers, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'
import { secretLeaks } from '../fixtures/secrets.js'
import { apiStats, call, ISSUES_PATH, jobRequests, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'

/** The fleet's token: the org's bot, which may read the private repository. */
const FLEET = 'ghp_FleetBotToken0123456789abcdefghijklmnop'
/** The test's own token for reading the upstream directly (its bucket is nobody else's). */
const VERIFIER = 'verifier'
const ACCEPT = 'application/vnd.github.v3+json'

async function assertNowhere (secret: string, side: SidecarProcess): Promise<void> {
  await side.stop() // flushes the index to disk
  assert.deepEqual(await secretLeaks(secret, side.dir, side.logs()), { files: [], lines: [] })
}

/**
 * A replay of workflow runs against the realistic stand-in (token-specific ETags, a new
 * repository-scoped token every job): with a fleet credential (CACHE_API_AUTH), two sidecar
 * processes in one swarm, jobs alternating between them.
 */
describe('API cache: per-job tokens with a fleet credential, two sidecars', function () {
  this.timeout(180_000)
  let gh: FakeGitHub
  let a: SwarmNode | undefined
  let b: SwarmNode | undefined
  const jobTokens: string[] = []

  before(async () => {
    gh = await startFakeGitHub({ tokens: { [FLEET]: { repos: ['acme/private'] }, [VERIFIER]: { repos: ['acme/private'] } } })
    const env = { CACHE_API_UPSTREAMS: `github=${gh.url}`, CACHE_API_AUTH: `github=${FLEET}` }
    a = await startSwarmNode(env)
    b = await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr })
    await Promise.all([waitForPeers(a, 1), waitForPeers(b, 1)])
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { A: a, B: b }, 40)
  })
  after(async () => {
    await stopAll([a, b, gh])
  })

  const nodes = (): [SwarmNode, SwarmNode] => {
    assert.ok(a !== undefined && b !== undefined, 'sidecars not started')
    return [a, b]
  }

  it("10 jobs × 30 GETs: each job token spends at most 1 unit, the fleet at most 1 per distinct resource; every answer is the upstream's", async () => {
    const [na, nb] = nodes()
    const requests = jobRequests()
    const distinct = new Set(requests).size
    for (let job = 0; job < 10; job++) {
      const token = `ghs_job${job}_${randomBytes(8).toString('hex')}`
      gh.addToken(token, { repos: ['acme/private'] })
      jobTokens.push(token)
      const side = job % 2 === 0 ? na : nb
      for (const path of requests) {
        const res = await call(`${side.url}/github${path}`, { headers: { authorization: `token ${token}`, accept: ACCEPT } })
        assert.equal(res.status, 200, `job ${job} ${path}: ${res.status} ${res.text.slice(0, 200)}`)
        const direct = await fetch(`${gh.url}${path}`, { headers: { authorization: `token ${VERIFIER}`, accept: ACCEPT } })
        assert.equal(res.text, await direct.text(), `job ${job} ${path}: the body is the upstream's`)
      }
      if (job === 0) {
        // Let A's records reach the DHT before B's first job, as minutes between jobs would.
        await waitFor(() => new Set(loggedKeys(na, 'announced').filter(k => k.startsWith('api:'))).size >= distinct, {
          timeoutMs: 30_000,
          intervalMs: 100,
          what: 'A to announce its API records'
        })
      }
    }
    const spent = jobTokens.map(t => gh.spent(t))
    const fleet = gh.spent(FLEET)
    assert.ok(spent.every(n => n <= 1), `job tokens spent ${JSON.stringify(spent)}`)
    assert.ok(
      fleet <= distinct,
      `the fleet paid ${fleet} for ${distinct} distinct resources: ${
        JSON.stringify(gh.requests({ token: FLEET }).filter(r => r.charged).map(r => r.path))
      }`
    )
    const total = spent.reduce((x, y) => x + y, 0) + fleet
    assert.ok(total <= 0.3 * requests.length * 10, `units through the cache ${total} vs ${requests.length * 10} direct`)
  })

  it("a token without access to the private repository gets the upstream's 404, never the body", async () => {
    const [na, nb] = nodes()
    const outsider = `ghs_outsider_${randomBytes(8).toString('hex')}`
    gh.addToken(outsider, { repos: [] })
    for (const side of [na, nb]) {
      for (const path of ['/repos/acme/private', '/repos/acme/private/contents/README.md']) {
        const res = await call(`${side.url}/github${path}`, { headers: { authorization: `token ${outsider}`, accept: ACCEPT } })
        assert.equal(res.status, 404, `${path} via ${side.url}`)
        assert.doesNotMatch(res.text, /acme\/private|README/)
      }
      const anon = await call(`${side.url}/github/repos/acme/private`, { headers: { accept: ACCEPT } })
      assert.equal(anon.status, 404)
    }
    // The public repository is public: anyone gets it, from the fleet's copy.
    const pub = await call(`${na.url}/github/repos/acme/public`, { headers: { authorization: `token ${outsider}`, accept: ACCEPT } })
    assert.equal(pub.status, 200)
  })

  it("a fleet-served answer carries no X-RateLimit-* (they are the fleet's bucket); stats report rate limits per credential label", async () => {
    const [na] = nodes()
    const res = await call(`${na.url}/github/repos/acme/public`, {
      headers: { authorization: `token ${jobTokens[0] ?? ''}`, accept: ACCEPT }
    })
    assert.equal(res.headers.get('x-ratelimit-remaining'), null)
    const stats = await apiStats(na.url)
    const byCredential = (stats.api_ratelimit_remaining as Record<string, Record<string, number>>).github ?? {}
    // B spends from the same bucket: A's last view is at least what is left now.
    assert.ok(byCredential.fleet !== undefined && byCredential.fleet >= gh.rateLimit(FLEET), JSON.stringify(byCredential))
    assert.ok(Object.keys(byCredential).every(k => k === 'fleet' || k === 'anon' || /^[0-9a-f]{12}$/.test(k)), JSON.stringify(byCredential))
  })

  it('the fleet credential is in no file under the cache dir and in no log line', async () => {
    for (const side of nodes()) await assertNowhere(FLEET, side)
  })
})

/**
 * CACHE_API_APP: the sidecar mints GitHub App installation tokens with @octokit/auth-app from
 * the app's private key, uses them as the fleet credential, and replaces them before they expire.
 */
describe('API cache: a GitHub App installation as the fleet credential', function () {
  this.timeout(90_000)
  let gh: FakeGitHub
  let side: SidecarProcess | undefined

  before(async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
    })
    // Tokens live 6 s: the sidecar replaces one a quarter of its lifetime before it expires.
    gh = await startFakeGitHub({
      tokens: {},
      apps: [{ appId: 4242, publicKeyPem: publicKey, installationId: 77, repos: ['acme/private'], tokenTtlMs: 6_000 }]
    })
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}` })
    const keyFile = join(side.dir, 'app.pem')
    await writeFile(keyFile, privateKey, { mode: 0o600 })
    await side.stop()
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}`, CACHE_API_APP: `github=4242:77:${keyFile}` }, { dir: side.dir })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })
  after(async () => {
    await stopAll([side, gh])
  })

  it('mints an installation token on first use and serves public repository resources with it', async () => {
    assert.ok(side)
    const res = await call(`${side.url}/github/repos/acme/public`, { headers: { accept: ACCEPT } })
    assert.equal(res.status, 200)
    assert.equal(gh.mintedTokens().length, 1)
    const minted = gh.mintedTokens()[0] ?? ''
    assert.ok(gh.count({ token: minted, path: '/repos/acme/public' }) >= 1, 'the upstream saw the minted token')
  })

  it('replaces the token before it expires: requests keep working, none reaches the upstream with an expired token', async () => {
    assert.ok(side)
    const url = side.url
    let page = 0
    await waitFor(async () => {
      page++
      const res = await call(`${url}/github${ISSUES_PATH}?page=1&per_page=${page}`, { headers: { accept: ACCEPT } })
      assert.equal(res.status, 200, res.text)
      return gh.mintedTokens().length >= 2
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'a second installation token' })
    assert.equal(gh.count({ status: 401 }), 0, 'no request was refused as expired')
  })

  it('minted tokens are in no file under the cache dir and in no log line', async () => {
    assert.ok(side)
    for (const token of gh.mintedTokens()) await assertNowhere(token, side)
  })
})

/** Many runners start the same workflow at once: each job its own token, one fleet request upstream. */
describe('API cache: 20 jobs at once, each with a new token, with a fleet credential', function () {
  this.timeout(60_000)
  let gh: FakeGitHub
  let side: SidecarProcess | undefined

  before(async () => {
    gh = await startFakeGitHub({ tokens: { [FLEET]: {} }, delayMs: 100 })
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}`, CACHE_API_AUTH: `github=${FLEET}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })
  after(async () => {
    await stopAll([side, gh])
  })

  it('the same list page asked by 20 new tokens at once costs the fleet one unit (and the repository one), the tokens none', async () => {
    assert.ok(side)
    const url = `${side.url}/github${ISSUES_PATH}?page=1&per_page=2`
    const tokens = Array.from({ length: 20 }, (_, i) => `ghs_burst${i}_${randomBytes(6).toString('hex')}`)
    for (const t of tokens) gh.addToken(t, {})
    const answers = await Promise.all(tokens.map(async t => await call(url, { headers: { authorization: `token ${t}`, accept: ACCEPT } })))
    assert.deepEqual([...new Set(answers.map(a => a.status))], [200])
    assert.equal(new Set(answers.map(a => a.text)).size, 1)
    assert.deepEqual(tokens.map(t => gh.spent(t)), tokens.map(() => 0))
    assert.deepEqual(
      gh.requests({ token: FLEET }).map(r => r.path).sort(),
      [`${ISSUES_PATH}?page=1&per_page=2`, '/repos/acme/public'].sort()
    )
  })
})

/**
 * Jobs far enough apart that every stored copy went stale in between (the stand-in's max-age is
 * 0): each job's GETs are revalidated upstream, with the fleet credential and its own ETag.
 */
describe('API cache: jobs after the copies went stale, with a fleet credential', function () {
  this.timeout(60_000)
  let gh: FakeGitHub
  let side: SidecarProcess | undefined

  before(async () => {
    gh = await startFakeGitHub({ tokens: { [FLEET]: { repos: ['acme/private'] } }, maxAgeS: 0 })
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}`, CACHE_API_AUTH: `github=${FLEET}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })
  after(async () => {
    await stopAll([side, gh])
  })

  it('5 jobs × 30 GETs: the fleet pays once per distinct resource and revalidates with its own ETag (free 304s); the job tokens at most 1 unit each', async () => {
    assert.ok(side)
    const requests = jobRequests()
    const distinct = new Set(requests).size
    const tokens: string[] = []
    for (let job = 0; job < 5; job++) {
      const token = `ghs_stale${job}_${randomBytes(6).toString('hex')}`
      gh.addToken(token, { repos: ['acme/private'] })
      tokens.push(token)
      for (const path of requests) {
        const res = await call(`${side.url}/github${path}`, { headers: { authorization: `token ${token}`, accept: ACCEPT } })
        assert.equal(res.status, 200, `job ${job} ${path}`)
        if (job > 0 && !path.startsWith('/repos/acme/private')) assert.equal(res.cache, 'REVALIDATED', `job ${job} ${path}`)
      }
    }
    assert.ok(gh.spent(FLEET) <= distinct, `the fleet paid ${gh.spent(FLEET)} for ${distinct} distinct resources`)
    const fleetConditional = gh.requests({ token: FLEET, status: 304 })
    assert.ok(
      fleetConditional.length > 0 && fleetConditional.every(r => r.ifNoneMatch !== undefined && r.ifNoneMatch === gh.etag(r.path, FLEET)),
      'the fleet revalidated with the ETags it received'
    )
    assert.ok(tokens.every(t => gh.spent(t) <= 1), JSON.stringify(tokens.map(t => gh.spent(t))))
  })
})

/** `p2p-cache diagnose` says whether each fleet credential is accepted, never what it is. */
describe('diagnose: upstream.api.fleet', function () {
  this.timeout(120_000)
  let gh: FakeGitHub
  let dir: string
  let keyFile: string

  before(async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
    })
    gh = await startFakeGitHub({ tokens: { [FLEET]: {} }, apps: [{ appId: 31, publicKeyPem: publicKey, installationId: 9 }] })
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-fleet-diag-'))
    keyFile = join(dir, 'app.pem')
    await writeFile(keyFile, privateKey, { mode: 0o600 })
  })
  after(async () => {
    await gh.stop()
    await rm(dir, { recursive: true, force: true })
  })

  /** The fleet finding of `diagnose --json` with only loopback upstreams and P2P off. */
  const fleetFinding = async (env: Record<string, string>): Promise<{ verdict: string, summary: string, fix?: string, stdout: string }> => {
    const r = await runCli(
      ['diagnose', '--json'],
      {
        CACHE_DIR: join(dir, 'data'),
        CACHE_ENABLE_P2P: 'false',
        CACHE_LISTEN_ADDRS: '/ip4/127.0.0.1/tcp/0',
        CACHE_HTTP_ADDR: '127.0.0.1:1',
        CACHE_REGISTRY_UPSTREAMS: `docker.io=${gh.url}`,
        CACHE_API_UPSTREAMS: `github=${gh.url}`,
        ...env
      },
      { timeoutMs: 90_000 }
    )
    const report = JSON.parse(r.stdout) as { findings: Array<{ check: string, verdict: string, summary: string, fix?: string }> }
    const finding = report.findings.find(f => f.check === 'upstream.api.fleet')
    assert.ok(finding, `no upstream.api.fleet finding: ${r.stdout.slice(0, 2000)} ${r.stderr}`)
    return { ...finding, stdout: r.stdout }
  }

  it('a token the upstream accepts: ok, with its rate limit; the token is not in the report', async () => {
    const f = await fleetFinding({ CACHE_API_AUTH: `github=${FLEET}` })
    assert.equal(f.verdict, 'ok', f.summary)
    assert.match(f.summary, /accepts the fleet credential \(token\) \(5000 of 5000 requests left this hour\)/)
    assert.ok(!f.stdout.includes(FLEET))
  })

  it('a token the upstream refuses: warn, with the variable to fix', async () => {
    const f = await fleetFinding({ CACHE_API_AUTH: 'github=ghp_revokedtoken' })
    assert.equal(f.verdict, 'warn')
    assert.match(f.summary, /refuses the fleet credential \(401/)
    assert.match(f.fix ?? '', /CACHE_API_AUTH/)
    assert.ok(!f.stdout.includes('ghp_revokedtoken'))
  })

  it('a GitHub App: ok once it mints a token; a wrong installation id: warn naming CACHE_API_APP', async () => {
    const good = await fleetFinding({ CACHE_API_APP: `github=31:9:${keyFile}` })
    assert.equal(good.verdict, 'ok', good.summary)
    assert.match(good.summary, /GitHub App installation token/)
    const bad = await fleetFinding({ CACHE_API_APP: `github=31:10:${keyFile}` })
    assert.equal(bad.verdict, 'warn')
    assert.match(bad.summary, /could not mint an installation token for app 31, installation 10 \(upstream answered 404\)/)
    assert.match(bad.fix ?? '', /CACHE_API_APP/)
  })
})

/**
 * A public repository is not all public: its hooks, keys, secrets and settings need rights a
 * fleet credential may have and a client may not, and the other way round.
 */
describe('API cache: areas of a public repository that need rights, with a fleet credential', function () {
  this.timeout(60_000)
  const ADMIN = 'ghs_repo_admin'
  const READER = 'ghs_reader'
  let gh: FakeGitHub
  let adminFleet: SidecarProcess | undefined
  let readFleet: SidecarProcess | undefined

  before(async () => {
    gh = await startFakeGitHub({
      tokens: { [FLEET]: {}, fleetadmin: { admin: ['acme/public'] }, [ADMIN]: { admin: ['acme/public'] }, [READER]: {} }
    })
    adminFleet = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}`, CACHE_API_AUTH: 'github=fleetadmin' })
    readFleet = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}`, CACHE_API_AUTH: `github=${FLEET}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { adminFleet, readFleet })
  })
  after(async () => {
    await stopAll([adminFleet, readFleet, gh])
  })

  const hooks = async (side: SidecarProcess | undefined, token: string): Promise<Awaited<ReturnType<typeof call>>> => {
    assert.ok(side)
    return await call(`${side.url}/github/repos/acme/public/hooks`, { headers: { authorization: `token ${token}`, accept: ACCEPT } })
  }

  it("a fleet credential with admin rights never hands a repository's hooks to a client without them", async () => {
    assert.equal((await hooks(adminFleet, ADMIN)).status, 200)
    const reader = await hooks(adminFleet, READER)
    assert.equal(reader.status, 404)
    assert.doesNotMatch(reader.text, /ci\.acme\.example/)
    const anon = await call(`${adminFleet?.url ?? ''}/github/repos/acme/public/hooks`, { headers: { accept: ACCEPT } })
    assert.equal(anon.status, 404)
  })

  it("a read-only fleet credential's 404 is not what an admin client gets: the client's own credential is asked", async () => {
    const admin = await hooks(readFleet, ADMIN)
    assert.equal(admin.status, 200)
    assert.match(admin.text, /ci\.acme\.example/)
    assert.equal((await hooks(readFleet, READER)).status, 404)
  })
})
