import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout, pullToLayout, layoutBlobDigests } from '../fixtures/skopeo.js'
import { waitFor } from '../fixtures/wait.js'
import { dumpLogsIfFailed, fetchBlob, startSwarmNode, stopAll, waitForPeers, p2pStats, type SwarmNode } from '../fixtures/swarm.js'

/**
 * Three sidecars A, B, C in one private swarm (B and C bootstrap to A), a real docker-registry
 * upstream and skopeo as the client. What A pulled is served to B and C by the swarm once the
 * upstream is gone.
 */
describe('p2p swarm: three sidecars share what one pulled', function () {
  this.timeout(60_000)
  let work: string
  let registry: Registry | undefined
  let a: SwarmNode | undefined
  let b: SwarmNode | undefined
  let c: SwarmNode | undefined
  let app: ImageDescription
  let other: ImageDescription

  const node = (n: SwarmNode | undefined, name: string): SwarmNode => {
    assert.ok(n, `node ${name} not started`)
    return n
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-swarm-'))
    registry = await startRegistry()
    app = await buildImage(join(work, 'app'), { tag: 'v1', layers: 3, layerSize: 256 * 1024 })
    other = await buildImage(join(work, 'other'), { tag: 'v1', layers: 1, layerSize: 128 * 1024 })
    await pushLayout(join(work, 'app'), 'v1', registry.host, 'swarm/app')
    await pushLayout(join(work, 'other'), 'v1', registry.host, 'swarm/other')
    const upstreams = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    a = await startSwarmNode(upstreams)
    ;[b, c] = await Promise.all([
      startSwarmNode({ ...upstreams, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr }),
      startSwarmNode({ ...upstreams, CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr })
    ])
    await Promise.all([waitForPeers(a, 2), waitForPeers(b, 1), waitForPeers(c, 1)])
    await registry.settled()
    registry.clearRequests()
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { A: a, B: b, C: c })
  })

  after(async () => {
    try {
      await stopAll([a, b, c, registry])
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })

  async function pull (n: SwarmNode, repo: string, ref: string): Promise<string[]> {
    const out = await mkdtemp(join(work, 'pull-'))
    await pullToLayout(n.host, repo, ref, out, { timeoutMs: 30_000 })
    return await layoutBlobDigests(out)
  }

  it('the nodes see each other in /api/p2p', async () => {
    const infoA = await node(a, 'A').p2p()
    const ids = new Set(infoA.peers.map(p => p.peerId))
    assert.ok(ids.has(node(b, 'B').peerId), `A lists B: ${JSON.stringify(infoA.peers)}`)
    assert.ok(ids.has(node(c, 'C').peerId), `A lists C: ${JSON.stringify(infoA.peers)}`)
    assert.equal(new Set([a?.peerId, b?.peerId, c?.peerId]).size, 3, 'three distinct peer ids')
  })

  it('A pulls two images from the upstream', async () => {
    const na = node(a, 'A')
    const reg = registry
    assert.ok(reg)
    assert.deepEqual(new Set(await pull(na, 'swarm/app', 'v1')), new Set(app.allBlobDigests))
    assert.deepEqual(new Set(await pull(na, 'swarm/other', 'v1')), new Set(other.allBlobDigests))
    // Blobs are committed (and then announced) after the response: wait for the commits.
    const total = app.allBlobDigests.length + other.allBlobDigests.length
    await waitFor(async () => (await p2pStats(na)).stores >= total, { timeoutMs: 10_000, what: `A to commit ${total} blobs` })
    await reg.settled()
    assert.ok(reg.count({ kind: 'blob', method: 'GET' }) >= app.layers.length + other.layers.length, 'the layers came from the upstream')
    const stats = await p2pStats(na)
    assert.equal(stats.peer_hits, 0)
    assert.ok(stats.upstream_hits > 0)
  })

  it('with the upstream stopped, B gets a blob only A has from A: X-Cache PEER, X-Cache-Source = A', async () => {
    await registry?.stop()
    const nb = node(b, 'B')
    const layer = other.layers[0]
    assert.ok(layer)
    const got = await fetchBlob(`${nb.url}/v2/swarm/other/blobs/${layer.digest}`, { signal: AbortSignal.timeout(30_000) })
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('x-cache'), 'PEER')
    assert.equal(got.headers.get('x-cache-source'), node(a, 'A').peerId)
    assert.equal(got.length, layer.size)
    assert.equal(got.digest, layer.digest)
  })

  it('a small blob (a config, a few hundred bytes) also comes from the peer', async () => {
    const nb = node(b, 'B')
    const got = await fetchBlob(`${nb.url}/v2/swarm/other/blobs/${other.configDigest}`, { signal: AbortSignal.timeout(30_000) })
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('x-cache'), 'PEER')
    assert.equal(got.headers.get('x-cache-source'), node(a, 'A').peerId)
    assert.equal(got.digest, other.configDigest)
  })

  it('B pulls the image by digest from the swarm, byte-identical, no upstream fetch', async () => {
    const nb = node(b, 'B')
    const got = await pull(nb, 'swarm/app', app.manifestDigest)
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
    // Counted at commit, a moment after the client's last byte.
    const stats = await waitFor(async () => {
      const s = await p2pStats(nb)
      return s.peer_hits > 0 && s
    }, { timeoutMs: 10_000, what: 'B to count a peer hit' })
    assert.equal(stats.upstream_hits, 0)
    assert.ok(stats.bytes_from_peers > 0, `B bytes_from_peers ${stats.bytes_from_peers}`)
    assert.equal(stats.bytes_from_upstream, 0)
  })

  it('C gets a layer from a peer (header check), then pulls the image by digest', async () => {
    const nc = node(c, 'C')
    const layer = app.layers[1]
    assert.ok(layer)
    const head = await fetchBlob(`${nc.url}/v2/swarm/app/blobs/${layer.digest}`, { signal: AbortSignal.timeout(30_000) })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('x-cache'), 'PEER')
    assert.ok(
      [a?.peerId, b?.peerId].includes(head.headers.get('x-cache-source') ?? ''),
      `X-Cache-Source ${head.headers.get('x-cache-source')} is A (${a?.peerId}) or B (${b?.peerId})`
    )
    assert.equal(head.digest, layer.digest)

    const got = await pull(nc, 'swarm/app', app.manifestDigest)
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
    // Counted at commit, a moment after the client's last byte.
    const stats = await waitFor(async () => {
      const s = await p2pStats(nc)
      return s.peer_hits > 0 && s
    }, { timeoutMs: 10_000, what: 'C to count a peer hit' })
    assert.equal(stats.upstream_hits, 0)
    assert.ok(stats.bytes_from_peers > 0, `C bytes_from_peers ${stats.bytes_from_peers}`)
    assert.equal(stats.bytes_from_upstream, 0)
  })

  it('A counts the bytes it served to peers', async () => {
    const statsA = await p2pStats(node(a, 'A'))
    assert.ok(statsA.bytes_served_to_peers > 0, `A bytes_served_to_peers ${statsA.bytes_served_to_peers}`)
    // The app layers alone are 3 x ~256 KiB; B got all of them from the swarm, and A was its only peer holding them.
    const layerBytes = app.layers.reduce((n, l) => n + l.size, 0)
    assert.ok(statsA.bytes_served_to_peers >= layerBytes, `A served ${statsA.bytes_served_to_peers} >= ${layerBytes}`)
  })
})
