import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, MT_OCI_MANIFEST, type ImageDescription } from '../fixtures/oci-image.js'
import { layoutBlobDigests, pullToLayout, pushLayout } from '../fixtures/skopeo.js'
import { startSwarmNode, type SwarmNode } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'

describe('pull by tag while the upstream is down', function () {
  this.timeout(120_000)
  let work: string
  let registry: Registry
  let image: ImageDescription
  const nodes: SwarmNode[] = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-tags-'))
    registry = await startRegistry()
    image = await buildImage(join(work, 'img'), { tag: 'v1', layers: 2, layerSize: 64 * 1024 })
    await pushLayout(join(work, 'img'), 'v1', registry.host, 'team/app')
  })

  after(async () => {
    for (const n of nodes) await n.destroy()
    await registry?.destroy()
    await rm(work, { recursive: true, force: true })
  })

  it('resolves the tag from a peer that resolved it, says so, and the pull completes from peers', async () => {
    const env = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    const a = await startSwarmNode(env)
    nodes.push(a)
    const b = await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr })
    nodes.push(b)
    await waitFor(async () => ((await b.stats()).peers_connected ?? 0) >= 1, { timeoutMs: 10_000, what: 'B connected to A' })
    await pullToLayout(a.host, 'team/app', 'v1', join(work, 'a'))
    // A tells the swarm of the tag once it is quiet after the pull (announcements wait while a node moves blobs).
    await waitFor(() => a.logs().some(l => l.includes('"announced"') && l.includes('/team/app:v1#')), {
      timeoutMs: 35_000,
      intervalMs: 100,
      what: 'A announced the tag it resolved'
    })
    await registry.stop()

    // B never resolved v1 itself.
    const res = await fetch(`${b.url}/v2/team/app/manifests/v1`, { headers: { accept: MT_OCI_MANIFEST } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest)
    assert.equal(res.headers.get('x-cache-tag-source'), a.peerId)
    assert.ok(res.headers.get('x-cache-stale-tag'), 'the answer is marked as a past resolution')
    assert.match(res.headers.get('warning') ?? '', /^110 /)
    await res.arrayBuffer()

    await pullToLayout(b.host, 'team/app', 'v1', join(work, 'b'))
    assert.deepEqual(new Set(await layoutBlobDigests(join(work, 'b'))), new Set(image.allBlobDigests))
    // A blob is counted when it is committed, just after its last byte went out (verified).
    await waitFor(async () => ((await b.stats()).peer_hits ?? 0) >= image.allBlobDigests.length, {
      timeoutMs: 10_000,
      what: 'B to count every blob as a peer hit'
    })
    assert.equal((await b.stats()).upstream_hits, 0)
  })

  // Found by the churn soak: stored blobs were announced again at start-up, resolved tags not,
  // so after a restart nobody could find who had resolved one.
  it('after a restart, the node that resolved the tag announces it again: a new node finds it there', async () => {
    const [a, b] = nodes
    assert.ok(a !== undefined && b !== undefined)
    // B knows the tag too: only A may answer.
    await b.stop()
    try {
      await a.restart()
      const c = await startSwarmNode({
        CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}`,
        CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr
      })
      nodes.push(c)
      const found = await waitFor(async () => {
        const res = await fetch(`${c.url}/v2/team/app/manifests/v1`, { headers: { accept: MT_OCI_MANIFEST } })
        await res.arrayBuffer()
        return res.status === 200 ? res : undefined
      }, { timeoutMs: 20_000, intervalMs: 500, what: 'the new node to resolve v1 from A with the upstream down' })
      assert.equal(found.headers.get('docker-content-digest'), image.manifestDigest)
      assert.equal(found.headers.get('x-cache-tag-source'), a.peerId)
    } finally {
      await b.restart()
    }
  })

  it('still fails clearly when no node ever resolved the tag', async () => {
    const [, b] = nodes
    assert.ok(b !== undefined)
    const res = await fetch(`${b.url}/v2/team/app/manifests/never-pushed`)
    assert.equal(res.status, 502)
    assert.match(await res.text(), /UPSTREAM_UNAVAILABLE/)
  })
})
