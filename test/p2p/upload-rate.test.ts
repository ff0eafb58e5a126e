import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { dumpLogsIfFailed, fetchBlob, pushBlob, startSwarmNode, stopAll, waitForRoutingTables, type SwarmNode } from '../fixtures/swarm.js'

const MiB = 1024 * 1024
const REPO = 'team/capped'
const RATE = 4_000_000

/**
 * Issue 23: CACHE_P2P_MAX_UPLOAD_RATE caps what a node serves to peers, over the data channel
 * and over libp2p. An upper bound only: the served rate never exceeds the cap by more than 10%
 * (a loaded machine only makes the transfer slower); the achieved rate goes in the bench.
 */
describe('CACHE_P2P_MAX_UPLOAD_RATE: a node serves peers at most at its cap', function () {
  this.timeout(90_000)
  let registry: Registry
  const nodes: SwarmNode[] = []

  before(async () => {
    registry = await startRegistry()
    const env = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    const holder = await startSwarmNode({ ...env, CACHE_P2P_MAX_UPLOAD_RATE: '4MB' })
    nodes.push(holder)
    nodes.push(await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: holder.bootstrapAddr }))
    nodes.push(await startSwarmNode({ ...env, CACHE_BOOTSTRAP_PEERS: holder.bootstrapAddr, CACHE_P2P_DATA_PORT: 'off' }))
    await waitForRoutingTables(nodes)
  })

  afterEach(function () {
    dumpLogsIfFailed(this, Object.fromEntries(nodes.map((n, i) => [`n${i + 1}`, n])))
  })

  after(async () => {
    await stopAll(nodes)
    await registry?.destroy()
  })

  for (const [k, channel] of [[1, 'the data channel'], [2, 'libp2p (the reader has no data channel)']] as const) {
    it(`over ${channel}: a 12 MiB blob from the capped holder takes at least 12 MiB / (1.1 x 4 MB/s)`, async () => {
      const data = randomBytes(12 * MiB)
      const digest = await pushBlob(registry.url, REPO, data)
      const [holder, reader] = [nodes[0] as SwarmNode, nodes[k] as SwarmNode]
      const first = await fetchBlob(`${holder.url}/v2/${REPO}/blobs/${digest}`)
      assert.equal(first.digest, digest)
      const started = performance.now()
      const got = await fetchBlob(`${reader.url}/v2/${REPO}/blobs/${digest}`)
      const seconds = (performance.now() - started) / 1000
      assert.equal(got.digest, digest)
      assert.equal(got.headers.get('x-cache'), 'PEER', 'read from the capped holder')
      const rate = data.byteLength / seconds
      assert.ok(rate <= RATE * 1.1, `served at ${(rate / 1e6).toFixed(2)} MB/s, over the 4 MB/s cap by more than 10%`)
      const stats = await reader.stats()
      if (k === 1) assert.ok((stats.bytes_from_peers_data_channel ?? 0) >= data.byteLength, 'the bytes came over the data channel')
      else assert.equal(stats.bytes_from_peers_data_channel ?? 0, 0)
    })
  }
})
