import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { fetchBlob, pushBlob, startSwarmNode, stopAll, waitForPeers, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'

describe('what a node announces', function () {
  this.timeout(60_000)
  let registry: Registry
  let a: SwarmNode
  let b: SwarmNode

  before(async () => {
    registry = await startRegistry()
  })

  after(async () => {
    await stopAll([a, b])
    await registry?.destroy()
  })

  it('a blob stored while the node was alone is announced once a peer joins', async () => {
    const env = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    a = await startSwarmNode(env)
    const digest = await pushBlob(registry.url, 'team/early', randomBytes(100_000))
    assert.equal((await fetchBlob(`${a.url}/v2/team/early/blobs/${digest}`)).headers.get('x-cache'), 'MISS')
    b = await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr })
    await waitForPeers(b, 1)
    await registry.stop()
    try {
      // A's announcement waited for a routing table entry; B asks until it lands (bounded).
      const got = await waitFor(async () => {
        const res = await fetchBlob(`${b.url}/v2/team/early/blobs/${digest}`)
        return res.status === 200 ? res : undefined
      }, { timeoutMs: 10_000, intervalMs: 250, what: 'B gets the blob from A' })
      assert.equal(got.headers.get('x-cache'), 'PEER')
      assert.equal(got.digest, digest)
    } finally {
      await registry.start()
    }
  })

  it('is answered "not found" by its former provider, and the next node goes upstream', async () => {
    const digest = await pushBlob(registry.url, 'team/gone', randomBytes(200_000))
    const url = (node: SwarmNode): string => `${node.url}/v2/team/gone/blobs/${digest}`
    assert.equal((await fetchBlob(url(a))).headers.get('x-cache'), 'MISS')
    // A announces after its commit, which follows the response: wait for it (debug log).
    await waitFor(() => a.logs().some(l => l.includes('"announced"') && l.includes(digest)), {
      timeoutMs: 10_000,
      what: 'A announced the blob'
    })
    const fromPeer = await fetchBlob(url(b))
    assert.equal(fromPeer.headers.get('x-cache'), 'PEER')
    assert.equal(fromPeer.digest, digest)

    // Both drop it (DELETE /api/cache is what a janitor or eviction does to the store).
    // A blob still being served (leased) is kept by DELETE: repeat until the store is empty.
    for (const node of [a, b]) {
      // The response ends when the digest verifies; the commit follows it.
      await waitFor(async () => (await fetch(url(node), { method: 'HEAD' })).headers.get('x-cache') === 'HIT', {
        timeoutMs: 5_000,
        what: 'blob committed'
      })
      await waitFor(async () => {
        const res = await fetch(`${node.url}/api/cache`, { method: 'DELETE' })
        return res.status === 200 && (await res.json() as { current_size: number }).current_size === 0
      }, { timeoutMs: 5_000, what: 'store emptied' })
    }
    await registry.settled()
    const upstreamBefore = registry.count({ method: 'GET', pathIncludes: digest })
    const again = await fetchBlob(url(b))
    assert.equal(again.digest, digest)
    assert.equal(
      again.headers.get('x-cache'),
      'MISS',
      `no peer has it any more (source ${again.headers.get('x-cache-source') ?? '?'}; A is ${a.peerId}, B is ${b.peerId})`
    )
    await registry.settled()
    assert.equal(registry.count({ method: 'GET', pathIncludes: digest }), upstreamBefore + 1)
  })
})
