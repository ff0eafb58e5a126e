import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OPTIONS } from '../../src/config/options.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { ISSUES_PATH, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'
import { ghMissing, startFakeGitHubProcess, type FakeGitHubProcess } from '../fixtures/fake-github-child.js'
import { freePort } from '../fixtures/ports.js'
import { must, Netns, netnsUnavailable, run, type RunResult } from '../fixtures/netns.js'
import { examplePath, readExample } from './example-files.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/** Shaped like a GitHub token, known only to the fake (which lets it read acme/private). */
const TOKEN = 'ghp_p2pCacheExamplesTest0123456789abcdefA'
const OCTOKIT = examplePath('api', 'octokit.mjs')
const GH_SH = examplePath('api', 'gh.sh')

describe('examples/api/octokit.mjs', function () {
  this.timeout(60_000)
  let gh: FakeGitHub
  let side: SidecarProcess

  before(async () => {
    gh = await startFakeGitHub({ tokens: { [TOKEN]: { repos: ['acme/private'] } } })
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })
  after(async () => {
    await stopAll([side, gh])
  })

  /** node examples/api/octokit.mjs OWNER/REPO, as a user runs it, with GITHUB_API_URL at this sidecar. */
  const octokit = async (repo: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
    await run(process.execPath, [OCTOKIT, repo], {
      env: { PATH: process.env.PATH, GITHUB_API_URL: `${side.url}/github`, GITHUB_TOKEN: TOKEN, ...env },
      timeoutMs: 30_000
    })

  it("defaults to the sidecar's github upstream at its default address", async () => {
    assert.ok((await readExample('api', 'octokit.mjs')).includes(`'http://${OPTIONS.httpAddr.default}/github'`))
  })

  it('first run: the repo and X-Cache MISS for each call; second run: REVALIDATED, a free 304 upstream', async () => {
    const first = await octokit('acme/public')
    assert.equal(first.code, 0, first.stderr)
    assert.deepEqual(first.stdout.trim().split('\n').map(l => l.replace(/X-RateLimit-Remaining: \d+/, 'X-RateLimit-Remaining: N')), [
      `API: ${side.url}/github`,
      'repos.get acme/public: 200 X-Cache: MISS X-RateLimit-Remaining: N',
      'issues.listForRepo page 1 (6 issues): 200 X-Cache: MISS X-RateLimit-Remaining: N'
    ])
    const spent = gh.rateLimit(TOKEN)

    const second = await octokit('acme/public')
    assert.equal(second.code, 0, second.stderr)
    const lines = second.stdout.trim().split('\n')
    assert.match(lines[1] ?? '', /^repos\.get acme\/public: 200 X-Cache: REVALIDATED X-RateLimit-Remaining: \d+$/)
    assert.match(lines[2] ?? '', /^issues\.listForRepo page 1 \(6 issues\): 200 X-Cache: REVALIDATED /)
    assert.equal(gh.rateLimit(TOKEN), spent, 'the second run cost no rate limit')
    const repoCalls = gh.requests({ path: '/repos/acme/public' })
    assert.deepEqual(repoCalls.map(r => [r.token, r.ifNoneMatch !== undefined, r.status]), [[TOKEN, false, 200], [TOKEN, true, 304]])
    assert.equal(gh.count({ pathIncludes: ISSUES_PATH, status: 304 }), 1)
  })

  it('says so when a call did not go through the sidecar, and stops with a usage line without a repo', async () => {
    const direct = await octokit('acme/public', { GITHUB_API_URL: gh.url })
    assert.equal(direct.code, 0, direct.stderr)
    assert.match(direct.stdout, /repos\.get acme\/public: 200 X-Cache: \(none: this call did not go through p2p-cache\)/)
    const usage = await octokit('', { GITHUB_REPOSITORY: '' })
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /^usage: node octokit\.mjs OWNER\/REPO/)
  })
})

/**
 * examples/api/gh.sh: the real gh CLI through the sidecar's HTTPS listener, run in a network
 * namespace of this test's own with nothing but loopback, as test/apicache/gh.test.ts runs gh.
 */
describe('examples/api/gh.sh', function () {
  this.timeout(90_000)
  let ns: Netns | undefined
  let fake: FakeGitHubProcess | undefined
  let side: SidecarProcess | undefined
  let work: string | undefined
  let env: NodeJS.ProcessEnv = {}

  before(async function () {
    const why = await netnsUnavailable() ?? await ghMissing()
    if (why !== undefined) {
      skipUnlessCi(this, `${why} (gh must run in a network namespace with only loopback)`)
    }
    ns = await Netns.create('p2pc-exgh')
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-gh-'))
    // The certificate as the comment in gh.sh makes it.
    const cert = join(work, 'cache-cert.pem')
    const key = join(work, 'cache-key.pem')
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
    fake = await startFakeGitHubProcess({ tokens: { [TOKEN]: { repos: ['acme/private'] } } }, { netns: ns })
    const httpsAddr = `127.0.0.1:${await freePort()}`
    side = await startSidecar(
      { CACHE_API_UPSTREAMS: `github=${fake.url}`, CACHE_HTTPS_ADDR: httpsAddr, CACHE_TLS_CERT: cert, CACHE_TLS_KEY: key },
      { netns: ns }
    )
    env = {
      PATH: process.env.PATH,
      HOME: work,
      GH_CONFIG_DIR: join(work, 'gh-config'),
      GITHUB_TOKEN: TOKEN,
      P2P_CACHE_HTTPS_ADDR: httpsAddr,
      P2P_CACHE_CERT: cert
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

  const ghSh = async (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<RunResult> => {
    if (ns === undefined) throw new Error('no namespace')
    return await ns.run(GH_SH, args, { env: { ...env, ...extra }, timeoutMs: 30_000 })
  }

  it('defaults to the HTTPS address and certificate path its own comment sets up', async () => {
    const text = await readExample('api', 'gh.sh')
    assert.match(text, /^# {3}CACHE_HTTPS_ADDR=127\.0\.0\.1:9443$/m)
    assert.ok(text.includes('${P2P_CACHE_HTTPS_ADDR:-127.0.0.1:9443}'))
    assert.match(text, /-out \/etc\/p2p-cache\/cache-cert\.pem$/m)
    assert.ok(text.includes('${P2P_CACHE_CERT:-/etc/p2p-cache/cache-cert.pem}'))
  })

  it('prints the repo and X-Cache: MISS, then REVALIDATED (a 304 upstream, no rate limit spent)', async () => {
    const first = await ghSh(['acme/private'])
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /^acme\/private {2}X-Cache: MISS {2}X-Ratelimit-Remaining: \d+\n$/)
    const remaining = await fake?.rateLimit(TOKEN)

    const second = await ghSh([], { GITHUB_REPOSITORY: 'acme/private' })
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stdout, /^acme\/private {2}X-Cache: REVALIDATED {2}X-Ratelimit-Remaining: \d+\n$/)
    assert.equal(await fake?.rateLimit(TOKEN), remaining)
    const seen = await fake?.requests({ path: '/repos/acme/private' }) ?? []
    assert.deepEqual(seen.map(r => [r.token, r.ifNoneMatch !== undefined, r.status]), [[TOKEN, false, 200], [TOKEN, true, 304]])
  })

  it('stops with the reason when the token or the repo is missing', async () => {
    const noToken = await ghSh(['acme/private'], { GITHUB_TOKEN: '' })
    assert.notEqual(noToken.code, 0)
    assert.match(noToken.stderr, /set GITHUB_TOKEN \(or GH_ENTERPRISE_TOKEN\)/)
    const noRepo = await ghSh([])
    assert.notEqual(noRepo.code, 0)
    assert.match(noRepo.stderr, /usage: gh\.sh OWNER\/REPO/)
  })
})
