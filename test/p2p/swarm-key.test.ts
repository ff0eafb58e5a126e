import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'
import { runCli } from '../fixtures/sidecar-process.js'
import {
  dumpLogsIfFailed,
  fetchBlob,
  pushBlob,
  startSwarmNode,
  stopAll,
  waitForPeers,
  warnLines,
  p2pStats,
  type SwarmNode
} from '../fixtures/swarm.js'

async function newSwarmKey (): Promise<string> {
  const res = await runCli(['swarm-key'])
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /^[0-9a-fA-F]{64}\n?$/, `one line of 64 hex chars: ${JSON.stringify(res.stdout)}`)
  return res.stdout.trim()
}

describe('p2p private swarm: CACHE_SWARM_KEY', function () {
  this.timeout(60_000)
  let work: string
  let registry: Registry | undefined
  let key: string
  let otherKey: string
  let n1: SwarmNode | undefined
  let n2: SwarmNode | undefined
  let n3: SwarmNode | undefined
  let n4: SwarmNode | undefined
  let upstreams: NodeJS.ProcessEnv
  let blobDigest: string
  let blobSize: number

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-swarm-key-'))
    registry = await startRegistry()
    upstreams = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    const data = randomBytes(1024 * 1024 + 17)
    blobSize = data.length
    blobDigest = await pushBlob(registry.url, 'pnet/blob', data)
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { n1, n2, n3, n4 })
  })

  after(async () => {
    try {
      await stopAll([n1, n2, n3, n4, registry])
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })

  const need = (n: SwarmNode | undefined, name: string): SwarmNode => {
    assert.ok(n, `${name} not started`)
    return n
  }

  it('`p2p-cache swarm-key` prints a new 64-hex-char key each time', async () => {
    key = await newSwarmKey()
    otherKey = await newSwarmKey()
    assert.notEqual(key, otherKey)
  })

  it('two nodes with the same key connect', async () => {
    n1 = await startSwarmNode({ ...upstreams, CACHE_SWARM_KEY: key })
    n2 = await startSwarmNode({ ...upstreams, CACHE_SWARM_KEY: key, CACHE_BOOTSTRAP_PEERS: n1.bootstrapAddr })
    await Promise.all([waitForPeers(n1, 1), waitForPeers(n2, 1)])
    assert.ok((await n1.p2p()).peers.some(p => p.peerId === n2?.peerId))
  })

  it('a node with a different key bootstrapping to the first never connects', async () => {
    const first = need(n1, 'n1')
    n3 = await startSwarmNode({ ...upstreams, CACHE_SWARM_KEY: otherKey, CACHE_BOOTSTRAP_PEERS: first.bootstrapAddr })
    const stranger = n3
    // Proof that it tried: the warning about the bootstrap peer it could not reach.
    await waitFor(() => warnLines(stranger.logs()).find(l => l.includes(first.peerId)), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `n3 to log a warning naming its bootstrap peer ${first.peerId}`
    })
    assert.equal((await p2pStats(stranger)).peers_connected, 0)
    assert.deepEqual((await stranger.p2p()).peers, [])
    const info = await first.p2p()
    assert.ok(!info.peers.some(p => p.peerId === stranger.peerId), `n1 must not list n3: ${JSON.stringify(info.peers)}`)
    assert.equal((await p2pStats(first)).peers_connected, 1, 'n1 is connected to n2 only')
  })

  it('a blob cached on node 1 reaches node 2 from the swarm, node 3 only from the upstream', async () => {
    const first = need(n1, 'n1')
    const blobPath = `/v2/pnet/blob/blobs/${blobDigest}`
    const cold = await fetchBlob(`${first.url}${blobPath}`, { signal: AbortSignal.timeout(20_000) })
    assert.equal(cold.status, 200)
    assert.equal(cold.headers.get('x-cache'), 'MISS')
    assert.equal(cold.digest, blobDigest)
    // Committed (and so announced) after the response ends.
    await waitFor(async () => (await p2pStats(first)).stores >= 1, { timeoutMs: 10_000, what: 'n1 to commit the blob' })

    const fromPeer = await fetchBlob(`${need(n2, 'n2').url}${blobPath}`, { signal: AbortSignal.timeout(20_000) })
    assert.equal(fromPeer.status, 200)
    assert.equal(fromPeer.headers.get('x-cache'), 'PEER')
    assert.equal(fromPeer.headers.get('x-cache-source'), first.peerId)
    assert.equal(fromPeer.length, blobSize)
    assert.equal(fromPeer.digest, blobDigest)

    const stranger = need(n3, 'n3')
    const fromUpstream = await fetchBlob(`${stranger.url}${blobPath}`, { signal: AbortSignal.timeout(20_000) })
    assert.equal(fromUpstream.status, 200)
    assert.equal(fromUpstream.headers.get('x-cache'), 'MISS')
    assert.equal(fromUpstream.digest, blobDigest)
    const stats3 = await p2pStats(stranger)
    assert.equal(stats3.peer_hits, 0)
    assert.equal(stats3.bytes_from_peers, 0)
    assert.equal(stats3.peers_connected, 0)
  })

  it('the key also works in the 3-line swarm.key format', async () => {
    const first = need(n1, 'n1')
    const text = `/key/swarm/psk/1.0.0/\n/base16/\n${key}\n`
    n4 = await startSwarmNode({ ...upstreams, CACHE_SWARM_KEY: text, CACHE_BOOTSTRAP_PEERS: first.bootstrapAddr })
    await waitForPeers(n4, 1)
    assert.ok((await n4.p2p()).peers.some(p => p.peerId === first.peerId))
  })

  it('a malformed key stops start-up with exit code 2 naming CACHE_SWARM_KEY', async () => {
    const d = await mkdtemp(join(work, 'bad-'))
    const res = await runCli(
      ['serve'],
      {
        CACHE_DIR: join(d, 'data'),
        CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
        CACHE_ENABLE_P2P: 'true',
        CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${await freePort()}`,
        CACHE_SWARM_KEY: 'not-a-key'
      },
      { timeoutMs: 10_000 }
    )
    assert.ok(res.timedOut !== true, `serve kept running with a bad key; output:\n${res.stdout.slice(-2000)}`)
    assert.equal(res.code, 2, res.stderr)
    assert.match(res.stderr.trim(), /^p2p-cache: .*CACHE_SWARM_KEY/)
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr)
  })
})
