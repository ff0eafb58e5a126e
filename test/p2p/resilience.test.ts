import assert from 'node:assert/strict'
import { CLAIM_TIMEOUT_MS } from '../../src/p2p/claim/constants.js'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { waitFor } from '../fixtures/wait.js'
import {
  dumpLogsIfFailed,
  fetchBlob,
  pushBlob,
  startSwarmNode,
  stopAll,
  waitForPeers,
  p2pStats,
  type P2pStats,
  type SwarmNode
} from '../fixtures/swarm.js'

/** Big enough that a loopback peer transfer takes far longer than the 10 ms stats poll. */
const BIG = Number(process.env.P2P_TEST_BIG_BLOB_MIB ?? '192') * 1024 * 1024
const SMALL = 4 * 1024 * 1024 + 3

type Fetched = Awaited<ReturnType<typeof fetchBlob>>
type Outcome = { ok: true, value: Fetched } | { ok: false, error: unknown }

/**
 * Starts a GET of `url`, polls `node`'s stats every 10 ms until bytes_from_peers exceeds
 * `baseline`, and returns that snapshot plus the pending response. Fails (instead of passing
 * vacuously) when the response ends before any peer byte was counted.
 */
async function getWhileReceivingFromPeer (node: SwarmNode, url: string, baseline: number, timeoutMs = 20_000): Promise<{
  snapshot: P2pStats
  response: Promise<Outcome>
}> {
  let finished = false
  const response: Promise<Outcome> = fetchBlob(url, { signal: AbortSignal.timeout(45_000) })
    .then(value => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))
    .finally(() => {
      finished = true
    })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const snapshot = await p2pStats(node)
    if (snapshot.bytes_from_peers > baseline) return { snapshot, response }
    if (finished) {
      const out = await response
      const detail = out.ok ? `status ${out.value.status}, X-Cache ${out.value.headers.get('x-cache')}` : String(out.error)
      throw new Error(`the response ended (${detail}) before any byte from a peer was counted; stats ${JSON.stringify(snapshot)}`)
    }
    if (Date.now() > deadline) throw new Error(`no byte from a peer within ${timeoutMs} ms; stats ${JSON.stringify(snapshot)}`)
    await delay(10)
  }
}

async function settledOk (response: Promise<Outcome>): Promise<Fetched> {
  const out = await response
  if (!out.ok) throw out.error
  return out.value
}

describe('p2p resilience: a peer dies or hangs mid-transfer', function () {
  this.timeout(90_000)
  let work: string
  let registry: Registry | undefined
  let a: SwarmNode | undefined // holds big1; SIGKILLed mid-transfer
  let h: SwarmNode | undefined // holds big2 and small; SIGSTOPped
  let b: SwarmNode | undefined // the requester
  const blobs: Record<'big1' | 'big2' | 'small', { digest: string, size: number }> = {
    big1: { digest: '', size: 0 },
    big2: { digest: '', size: 0 },
    small: { digest: '', size: 0 }
  }
  const repo = 'resilience/blob'

  const need = (n: SwarmNode | undefined, name: string): SwarmNode => {
    assert.ok(n, `${name} not started`)
    return n
  }
  const blobUrl = (n: SwarmNode, digest: string): string => `${n.url}/v2/${repo}/blobs/${digest}`

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-resilience-'))
    registry = await startRegistry()
    for (const [name, size] of [['big1', BIG], ['big2', BIG], ['small', SMALL]] as const) {
      const data = randomBytes(size)
      blobs[name] = { digest: await pushBlob(registry.url, repo, data), size }
    }
    const upstreams = { CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` }
    a = await startSwarmNode(upstreams)
    b = await startSwarmNode({
      ...upstreams,
      CACHE_BOOTSTRAP_PEERS: a.bootstrapAddr,
      CACHE_PEER_FIRST_BYTE_TIMEOUT: '1s',
      CACHE_PEER_LOOKUP_TIMEOUT: '2s'
    })
    h = await startSwarmNode({ ...upstreams, CACHE_BOOTSTRAP_PEERS: `${a.bootstrapAddr},${b.bootstrapAddr}` })
    await Promise.all([waitForPeers(a, 2), waitForPeers(b, 2), waitForPeers(h, 2)])

    // A caches big1, H caches big2 and small, each from the upstream through its own mirror.
    const warm = async (n: SwarmNode, which: Array<keyof typeof blobs>): Promise<void> => {
      for (const name of which) {
        const got = await fetchBlob(blobUrl(n, blobs[name].digest), { signal: AbortSignal.timeout(45_000) })
        assert.equal(got.status, 200)
        assert.equal(got.digest, blobs[name].digest)
      }
      await waitFor(async () => (await p2pStats(n)).stores >= which.length, {
        timeoutMs: 20_000,
        what: `${n.url} to commit ${which.join(', ')}`
      })
    }
    await Promise.all([warm(a, ['big1']), warm(h, ['big2', 'small'])])
    await registry.settled()
    registry.clearRequests()
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { A: a, H: h, B: b })
  })

  after(async () => {
    for (const n of [a, h, b]) {
      const pid = n?.proc.child.pid
      if (pid !== undefined && n?.proc.isRunning() === true) {
        try {
          process.kill(pid, 'SIGCONT')
        } catch { /* gone */ }
      }
    }
    try {
      await stopAll([a, b, h, registry])
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })

  it('a provider SIGKILLed mid-transfer: the download resumes from the upstream and the client gets the whole blob', async () => {
    const nb = need(b, 'B')
    const before = await p2pStats(nb)
    const { snapshot, response } = await getWhileReceivingFromPeer(nb, blobUrl(nb, blobs.big1.digest), before.bytes_from_peers)
    await need(a, 'A').kill()
    const peerBytesAtKill = snapshot.bytes_from_peers - before.bytes_from_peers
    const got = await settledOk(response)
    const after = await p2pStats(nb)
    assert.equal(got.status, 200)
    assert.equal(got.length, blobs.big1.size)
    assert.equal(got.digest, blobs.big1.digest)
    const fromPeers = after.bytes_from_peers - before.bytes_from_peers
    const fromUpstream = after.bytes_from_upstream - before.bytes_from_upstream
    assert.ok(
      fromPeers < blobs.big1.size,
      `not vacuous: the peer transfer must be cut short (got ${fromPeers} of ${blobs.big1.size} bytes from peers, ${peerBytesAtKill} when A was killed); make the blob bigger (P2P_TEST_BIG_BLOB_MIB)`
    )
    assert.ok(fromUpstream > 0, `resumed upstream: bytes_from_upstream +${fromUpstream}`)
    assert.ok(
      fromUpstream < blobs.big1.size,
      `resumed with a Range, not a full refetch: ${fromUpstream} of ${blobs.big1.size} bytes from the upstream (${fromPeers} from peers)`
    )
    await registry?.settled()
    assert.ok((registry?.count({ method: 'GET', pathIncludes: `/blobs/${blobs.big1.digest}` }) ?? 0) >= 1, 'B asked the upstream')
  })

  it('a provider that hangs (SIGSTOP) mid-transfer is dropped; the client still gets the whole blob', async () => {
    const nb = need(b, 'B')
    const hung = need(h, 'H')
    const pid = hung.proc.child.pid
    assert.ok(pid !== undefined)
    const before = await p2pStats(nb)
    try {
      const { response } = await getWhileReceivingFromPeer(nb, blobUrl(nb, blobs.big2.digest), before.bytes_from_peers)
      process.kill(pid, 'SIGSTOP')
      const t0 = Date.now()
      const got = await settledOk(response)
      const waited = Date.now() - t0
      const after = await p2pStats(nb)
      assert.equal(got.status, 200)
      assert.equal(got.length, blobs.big2.size)
      assert.equal(got.digest, blobs.big2.digest)
      const fromPeers = after.bytes_from_peers - before.bytes_from_peers
      const fromUpstream = after.bytes_from_upstream - before.bytes_from_upstream
      assert.ok(fromPeers < blobs.big2.size, `not vacuous: ${fromPeers} of ${blobs.big2.size} bytes came from peers; make the blob bigger`)
      assert.ok(fromUpstream > 0, `resumed upstream: bytes_from_upstream +${fromUpstream}`)
      assert.ok(waited < 30_000, `completed ${waited} ms after the peer hung`)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
  })

  it('a provider that is hung before the request (sends nothing) is skipped after CACHE_PEER_FIRST_BYTE_TIMEOUT', async () => {
    const nb = need(b, 'B')
    const hung = need(h, 'H')
    const pid = hung.proc.child.pid
    assert.ok(pid !== undefined)
    const before = await p2pStats(nb)
    process.kill(pid, 'SIGSTOP')
    try {
      const t0 = Date.now()
      const got = await fetchBlob(blobUrl(nb, blobs.small.digest), { signal: AbortSignal.timeout(CLAIM_TIMEOUT_MS + 20_000) })
      const took = Date.now() - t0
      assert.equal(got.status, 200)
      assert.equal(got.length, blobs.small.size)
      assert.equal(got.digest, blobs.small.digest)
      assert.equal(got.headers.get('x-cache'), 'MISS')
      const after = await p2pStats(nb)
      assert.ok(after.bytes_from_upstream - before.bytes_from_upstream >= blobs.small.size)
      // When the hung node is the digest's coordinator, its claim times out first (CLAIM_TIMEOUT_MS);
      // then the 1 s first-byte budget, with room for a loaded machine.
      assert.ok(took < CLAIM_TIMEOUT_MS + 8_000, `took ${took} ms`)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
  })
})
