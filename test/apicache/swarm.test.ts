import assert from 'node:assert/strict'
import { dumpLogsIfFailed, loggedKeys, startSwarmNode, stopAll, waitForPeers, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'
import { call, auth, octokitStatus, octokitVia, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'

/**
 * Two sidecars A and B in one private swarm (B bootstraps to A), both in front of the fake GitHub
 * API, no fleet credential. A record one node stored is found by the other on the DHT and
 * revalidated upstream with the second requester's own credentials and If-Modified-Since (never
 * another token's ETag): a 304, which costs that token nothing.
 */
describe('API cache: two sidecars share API records', function () {
  this.timeout(90_000)
  let gh: FakeGitHub
  let a: SwarmNode | undefined
  let b: SwarmNode | undefined

  before(async () => {
    gh = await startFakeGitHub()
    const env = { CACHE_API_UPSTREAMS: `github=${gh.url}` }
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

  const node = (n: SwarmNode | undefined, name: string): SwarmNode => {
    assert.ok(n, `node ${name} not started`)
    return n
  }

  it("alice via A, then carol via B for the first time: B revalidates A's record with carol's token and If-Modified-Since (REVALIDATED, 0 spent)", async () => {
    const na = node(a, 'A')
    const nb = node(b, 'B')
    const logFrom = na.logs().length
    const viaA = await octokitVia(na.url, 'alice').repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(viaA.status, 200)
    assert.equal(viaA.headers['x-cache'], 'MISS')
    assert.equal(gh.rateLimit('alice'), 4999)

    // A announces what it stored in the background; give it a bounded while (a debug log line
    // 'announced' with an api: key). Not seeing it is not a failure by itself: the assertions
    // below are the contract, and their message says whether it was seen.
    let announced = true
    try {
      await waitFor(() => loggedKeys(na, 'announced', logFrom).some(k => k.startsWith('api:')), {
        timeoutMs: 10_000,
        intervalMs: 100,
        what: 'A to log an API record announcement'
      })
    } catch {
      announced = false
    }

    const viaB = await octokitVia(nb.url, 'carol').repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(viaB.status, 200)
    assert.deepEqual(viaB.data, viaA.data)
    const carol = gh.requests({ token: 'carol' })
    assert.equal(
      viaB.headers['x-cache'],
      'REVALIDATED',
      `B's answer: X-Cache ${String(viaB.headers['x-cache'])}, X-Cache-Source ${String(viaB.headers['x-cache-source'])}; ` +
        `A logged an api: announcement: ${announced} (announced: ${
          JSON.stringify(loggedKeys(na, 'announced', logFrom))
        }); upstream saw from carol: ${JSON.stringify(carol)}`
    )
    // Without a fleet credential: If-Modified-Since with carol's token; alice's ETag would be a charged 200.
    assert.deepEqual(carol.map(r => [r.path, r.ifNoneMatch, r.ifModifiedSince, r.status]), [[
      '/repos/acme/private',
      undefined,
      viaA.headers['last-modified'],
      304
    ]])
    assert.equal(gh.rateLimit('carol'), 5000, 'carol spent nothing')
    assert.equal(gh.rateLimit('alice'), 4999, 'and alice nothing more')
    assert.ok(
      [na.peerId, 'github', 'local'].includes(String(viaB.headers['x-cache-source'])),
      `X-Cache-Source ${String(viaB.headers['x-cache-source'])} is A (${na.peerId}), the upstream or local`
    )
  })

  it('carol again via B: REVALIDATED again, still 0 spent', async () => {
    const viaB = await octokitVia(node(b, 'B').url, 'carol').repos.get({ owner: 'acme', repo: 'private' })
    assert.equal(viaB.headers['x-cache'], 'REVALIDATED')
    assert.equal(gh.rateLimit('carol'), 5000)
  })

  it('bob (no access) and anonymous via B get the upstream 404, not the record', async () => {
    const nb = node(b, 'B')
    assert.equal(await octokitStatus(octokitVia(nb.url, 'bob').repos.get({ owner: 'acme', repo: 'private' })), 404)
    const anon = await call(`${nb.url}/github/repos/acme/private`)
    assert.equal(anon.status, 404)
    assert.doesNotMatch(anon.text, /acme\/private/)
    const withEtag = await call(`${nb.url}/github/repos/acme/private`, {
      headers: { ...auth('bob'), 'if-none-match': gh.etag('/repos/acme/private', 'alice') ?? '' }
    })
    assert.equal(withEtag.status, 404)
    assert.equal(gh.count({ token: 'bob', path: '/repos/acme/private' }), 2)
  })

  it("DELETE /api/cache on A withdraws A's API keys from the DHT with their bodies", async () => {
    const na = node(a, 'A')
    const from = na.logs().length
    const res = await fetch(`${na.url}/api/cache`, { method: 'DELETE', signal: AbortSignal.timeout(10_000) })
    assert.equal(res.status, 200)
    await waitFor(() => loggedKeys(na, 'withdrawn', from).some(k => k.startsWith('api:github /repos/acme/private#')), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'A to withdraw the api: key of /repos/acme/private'
    })
  })
})
