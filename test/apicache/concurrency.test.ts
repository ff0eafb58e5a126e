import assert from 'node:assert/strict'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { call, startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'

/** Identical concurrent GETs for a cold resource share one upstream request. */
describe('API cache: concurrent identical GETs', function () {
  this.timeout(60_000)
  let gh: FakeGitHub
  let side: SidecarProcess

  before(async () => {
    gh = await startFakeGitHub({ delayMs: 200 })
    side = await startSidecar({ CACHE_API_UPSTREAMS: `github=${gh.url}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })

  after(async () => {
    await stopAll([side, gh])
  })

  it('200 anonymous cold GETs of one resource (upstream takes 200 ms) cause exactly one upstream request', async () => {
    const path = '/repos/acme/public?burst=1'
    const all = await Promise.all(Array.from({ length: 200 }, async () => await call(`${side.url}/github${path}`)))
    const statuses = new Map<number, number>()
    for (const r of all) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
    assert.deepEqual([...statuses], [[200, 200]], 'every client got 200')
    const bodies = new Set(all.map(r => r.text))
    assert.equal(bodies.size, 1, 'one body for all')
    assert.deepEqual(JSON.parse([...bodies][0] ?? ''), gh.body('/repos/acme/public'))
    const kinds = new Map<string, number>()
    for (const r of all) kinds.set(r.cache, (kinds.get(r.cache) ?? 0) + 1)
    assert.ok(!kinds.has('PASS') && !kinds.has(''), `X-Cache of the 200 answers: ${JSON.stringify([...kinds])}`)
    assert.equal(gh.count({ path }), 1, `upstream requests: ${gh.count({ path })}`)
    assert.equal(gh.rateLimit('anon'), 4999)
  })
})
