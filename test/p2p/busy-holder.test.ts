import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { dumpLogsIfFailed, fetchBlob, pushBlob, startSwarmNode, stopAll, waitForRoutingTables, type SwarmNode } from '../fixtures/swarm.js'
import { startThrottleProxy, type ThrottleProxy } from '../fixtures/throttle-proxy.js'

const MiB = 1024 * 1024
const REPO = 'team/busy'

/**
 * Issue 12: the node a claim names may be serving its CACHE_MAX_UPLOADS already. The others
 * wait for a slot (it answers `busy`) rather than report it failed, which would hand the claim
 * over and cost the upstream a second copy. Since issue 23 the coordinator names joiners in a
 * chain, so one upload slot per node is enough: the herd is served by nodes still receiving.
 */
describe('a herd whose fetching node serves one peer at a time (CACHE_MAX_UPLOADS=1)', function () {
  this.timeout(90_000)
  let registry: Registry
  let proxy: ThrottleProxy
  const nodes: SwarmNode[] = []

  before(async () => {
    registry = await startRegistry()
    // 8 MiB/s per connection: the 16 MiB blob takes about 2 s from the upstream.
    proxy = await startThrottleProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: 8 * MiB })
    const env = { CACHE_REGISTRY_UPSTREAMS: `${proxy.host}=${proxy.url}`, CACHE_MAX_UPLOADS: '1' }
    const first = await startSwarmNode(env)
    nodes.push(first)
    for (let i = 0; i < 3; i++) nodes.push(await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: first.bootstrapAddr }))
    await waitForRoutingTables(nodes)
  })

  afterEach(function () {
    dumpLogsIfFailed(this, Object.fromEntries(nodes.map((n, i) => [`n${i + 1}`, n])))
  })

  after(async () => {
    await stopAll(nodes)
    await proxy?.close()
    await registry?.destroy()
  })

  it('every node gets the verified blob and the upstream sends it once', async () => {
    const data = randomBytes(16 * MiB)
    const digest = await pushBlob(registry.url, REPO, data)
    const got = await Promise.all(nodes.map(async n => await fetchBlob(`${n.url}/v2/${REPO}/blobs/${digest}`)))
    for (const g of got) {
      assert.equal(g.status, 200)
      assert.equal(g.digest, digest)
    }
    assert.equal(proxy.requests().filter(r => r.startsWith('GET ') && r.includes(digest)).length, 1, 'one upstream GET')
    const logs = nodes.flatMap(n => n.logs())
    const stats = await Promise.all(nodes.map(async n => await n.stats()))
    const busyAnswers = stats.reduce((sum, s) => sum + (s.peer_busy_answers ?? 0), 0)
    const relayed = stats.reduce((sum, s) => sum + (s.bytes_from_partial_holders ?? 0), 0)
    const sawBusy = logs.some(l =>
      l.includes('peer busy and no other holder could serve; asking it again') ||
      l.includes('holder busy; its pieces are asked of another holder')
    )
    // Not vacuous: either a joiner met a full holder (and counted it), or nodes still receiving served the others.
    assert.ok(
      (sawBusy && busyAnswers > 0) || relayed > 0,
      `a joiner found a holder busy (${busyAnswers} busy answers), or was served by a node still receiving (${relayed} bytes)`
    )
    assert.deepEqual(
      logs.filter(l => l.includes('"reason":"busy"') && l.includes('asking the coordinator again')),
      [],
      'a busy holder is waited for, not reported failed'
    )
  })
})
