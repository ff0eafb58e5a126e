import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { freePort } from '../fixtures/ports.js'
import { fetchBlob, pushBlob, startSwarmNode, stopAll, waitForPeers, warnLines, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'

// Compose's shape without a Docker engine: every sidecar gets the same list of names and ports,
// none knows a peer ID in advance, and the list names each node itself. `localhost` stands in
// for the service names (test/diagnose/netns.test.ts resolves real names between namespaces).
describe('bootstrap addresses without a peer ID (compose service names)', function () {
  this.timeout(60_000)
  let registry: Registry
  const nodes: Record<'a' | 'b' | 'c', SwarmNode | undefined> = { a: undefined, b: undefined, c: undefined }
  const ports = { a: 0, b: 0, c: 0 }
  let env: NodeJS.ProcessEnv

  before(async () => {
    registry = await startRegistry()
    ports.a = await freePort()
    ports.b = await freePort()
    ports.c = await freePort()
    env = {
      CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
      CACHE_BOOTSTRAP_PEERS: Object.values(ports).map(p => `/dns4/localhost/tcp/${p}`).join(',')
    }
  })

  after(async () => {
    await stopAll(Object.values(nodes))
    await registry?.destroy()
  })

  it('one shared list joins every node, and each skips itself without a warning', async () => {
    nodes.a = await startSwarmNode(env, { p2pPort: ports.a })
    nodes.b = await startSwarmNode(env, { p2pPort: ports.b })
    nodes.c = await startSwarmNode(env, { p2pPort: ports.c })
    for (const node of Object.values(nodes)) if (node !== undefined) await waitForPeers(node, 2)
    for (const [name, node] of Object.entries(nodes)) {
      const self = `/tcp/${ports[name as keyof typeof ports]}`
      assert.deepEqual(
        warnLines(node?.logs() ?? []).filter(l => l.includes('bootstrap') && l.includes(self)),
        [],
        `node ${name} does not warn about its own entry`
      )
    }
    // C may know A through B first (a loaded machine): its own dial of A's address follows.
    await waitFor(
      () => nodes.c?.logs().some(l => l.includes('connected to the node that answered') && l.includes(nodes.a?.peerId ?? '?')) === true,
      { timeoutMs: 20_000, intervalMs: 100, what: "C logs the peer ID it learned for A's address" }
    )
  })

  it('the swarm works: a blob A fetched comes to C from a peer', async () => {
    const digest = await pushBlob(registry.url, 'names/blob', randomBytes(300_000))
    const { a, c } = nodes
    assert.ok(a !== undefined && c !== undefined)
    assert.equal((await fetchBlob(`${a.url}/v2/names/blob/blobs/${digest}`)).headers.get('x-cache'), 'MISS')
    await waitFor(() => a.logs().some(l => l.includes('"announced"') && l.includes(digest)), {
      timeoutMs: 10_000,
      what: 'A announced the blob'
    })
    const got = await fetchBlob(`${c.url}/v2/names/blob/blobs/${digest}`)
    assert.equal(got.headers.get('x-cache'), 'PEER')
    assert.equal(got.digest, digest)
  })

  it('a node that comes back with a new identity (no volume) is found again under its new ID', async () => {
    const old = nodes.b
    assert.ok(old !== undefined)
    await old.destroy()
    nodes.b = undefined
    nodes.b = await startSwarmNode(env, { p2pPort: ports.b })
    const fresh = nodes.b.peerId
    assert.notEqual(fresh, old.peerId)
    for (const node of [nodes.a, nodes.c]) {
      await waitFor(async () => (await node?.p2p())?.peers.some(p => p.peerId === fresh), {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: 'the new B among the peers'
      })
    }
  })
})
