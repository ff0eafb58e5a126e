import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { fetchBlob, pushBlob, startSwarmNode, stopAll, waitForPeers, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'

describe('a blob that leaves a store leaves the swarm', function () {
  this.timeout(60_000)
  let registry: Registry
  let a: SwarmNode
  let b: SwarmNode

  before(async () => {
    registry = await startRegistry()
    const env = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    a = await startSwarmNode(env)
    b = await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr })
    await waitForPeers(b, 1)
  })

  after(async () => {
    await stopAll([a, b])
    await registry?.destroy()
  })

  it('is answered "not found" by its former provider, and the next node goes upstream', async () => {
    const digest = await pushBlob(registry.url, 'team/gone', randomBytes(200_000))
    const url = (node: SwarmNode): string => `${node.url}/v2/team/gone/blobs/${digest}`
    assert.equal((await fetchBlob(url(a))).headers.get('x-cache'), 'MISS')
    const fromPeer = await fetchBlob(url(b))
    assert.equal(fromPeer.headers.get('x-cache'), 'PEER')
    assert.equal(fromPeer.digest, digest)

    // Both drop it (DELETE /api/cache is what a janitor or eviction does to the store).
    for (const node of [a, b]) {
      await waitFor(async () => ((await node.stats()).current_size ?? 0) > 0, { timeoutMs: 5_000, what: 'blob committed' })
      const res = await fetch(`${node.url}/api/cache`, { method: 'DELETE' })
      assert.equal(res.status, 200)
      assert.equal((await node.stats()).current_size, 0)
    }
    await registry.settled()
    const upstreamBefore = registry.count({ method: 'GET', pathIncludes: digest })
    const again = await fetchBlob(url(b))
    assert.equal(again.digest, digest)
    assert.equal(again.headers.get('x-cache'), 'MISS', 'no peer has it any more')
    await registry.settled()
    assert.equal(registry.count({ method: 'GET', pathIncludes: digest }), upstreamBefore + 1)
  })
})
