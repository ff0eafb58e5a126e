import assert from 'node:assert/strict'
import { createLogger } from '../../../src/log/logger.js'
import { RecentWarnings } from '../../../src/log/recent-warnings.js'
import { ImagePulls } from '../../../src/metrics/image-pulls.js'
import { PeerTraffic } from '../../../src/metrics/peer-traffic.js'
import { Stats } from '../../../src/metrics/stats.js'
import type { Digest } from '../../../src/oci/digest.js'
import { OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/media-types.js'
import type { BlobRecord } from '../../../src/store/record.js'
import { HitHistory } from '../../../src/ui/hit-history.js'
import { Status, type ReachabilityView } from '../../../src/ui/status.js'

const OFF: ReachabilityView = { state: 'off', verdict: undefined, checkedAt: undefined, findings: [] }
const manifest = (config: number, layers: number[]): Buffer =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, config: { size: config }, layers: layers.map(size => ({ size })) }))

describe('status page data (issue 29)', () => {
  it('ImagePulls: a pull is a GET of an image manifest, sized config + layers; an index counts nothing; the tag names it', () => {
    const pulls = new ImagePulls(() => 1000)
    pulls.tagged('docker.io/library/alpine', '3.20')
    pulls.pulled('docker.io/library/alpine', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })), OCI_INDEX)
    pulls.pulled('docker.io/library/alpine', manifest(100, [1000, 2000]), OCI_MANIFEST)
    pulls.pulled('docker.io/library/alpine', manifest(100, [1000, 2000]), OCI_MANIFEST)
    pulls.pulled('docker.io/library/busybox', Buffer.from('not json'), OCI_MANIFEST)
    assert.deepEqual(pulls.snapshot(), { 'docker.io/library/alpine': { pulls: 2, bytes: 3100, tag: '3.20', last_at: 1000 } })
  })

  it('PeerTraffic: bytes each way per peer', () => {
    const traffic = new PeerTraffic(() => 5)
    traffic.add('A', 'received', 10)
    traffic.add('A', 'sent', 3)
    traffic.add('B', 'sent', 7)
    assert.deepEqual(traffic.snapshot(), {
      A: { bytes_received: 10, bytes_sent: 3, last_at: 5 },
      B: { bytes_received: 0, bytes_sent: 7, last_at: 5 }
    })
  })

  it('HitHistory: one point per sample, the difference of each source counter, an hour kept', () => {
    const counts = { hits: 0, peer_hits: 0, s3_hits: 0, upstream_hits: 0, stale_tags_served: 0 }
    let now = 0
    const history = new HitHistory(() => counts as unknown as Stats['counts'], () => now)
    history.sample()
    counts.hits = 5
    counts.peer_hits = 2
    now = 10_000
    history.sample()
    counts.upstream_hits = 1
    now = 20_000
    history.sample()
    assert.deepEqual(history.list(), [
      { at: 10_000, local: 5, peer: 2, s3: 0, upstream: 0, stale: 0 },
      { at: 20_000, local: 0, peer: 0, s3: 0, upstream: 1, stale: 0 }
    ])
    for (let i = 0; i < 400; i++) history.sample()
    assert.equal(history.list().length, 360)
  })

  it('Status: the numbers of the stats, peers busiest first, images ranked, pins counted (and cached), warnings newest first', async () => {
    const stats = new Stats({ currentSize: () => 300, peersConnected: () => 1, storeFull: () => false })
    stats.inc('hits', 3)
    stats.inc('misses', 1)
    stats.inc('peer_hits', 1)
    stats.inc('bytes_served', 1000)
    stats.inc('bytes_from_upstream', 400)
    stats.peerTraffic.add('Gone', 'received', 50)
    stats.imagePulls.pulled('r/small', manifest(1, [10]), OCI_MANIFEST)
    stats.imagePulls.pulled('r/small', manifest(1, [10]), OCI_MANIFEST)
    stats.imagePulls.pulled('r/big', manifest(1, [1000]), OCI_MANIFEST)
    const records: Array<[Digest, BlobRecord]> = [
      ['sha256:a' as Digest, { size: 100, pinned: true } as BlobRecord],
      ['sha256:b' as Digest, { size: 200 } as BlobRecord]
    ]
    let reads = 0
    const store = {
      maxSize: 1000,
      size: 300,
      full: false,
      async *entries () {
        reads++
        yield* records
      }
    }
    const warnings = new RecentWarnings()
    warnings.add({ time: 't1', level: 'warn', msg: 'first', component: 'p2p' })
    warnings.add({ time: 't2', level: 'error', msg: 'second', component: undefined })
    const status = new Status({
      stats,
      store,
      history: { list: () => [] },
      transfers: () => [],
      p2p: () => ({
        peerId: 'Self',
        addrs: ['/ip4/10.0.0.1/tcp/9000'],
        peers: [{ peerId: 'Here', addrs: ['/ip4/10.0.0.2/tcp/9000'] }],
        uploads: 0,
        routingTable: 1,
        lastPeerHitAt: null,
        dataPort: 9001,
        dataUnreachable: ['Here']
      }),
      reachability: { current: () => OFF },
      warnings: () => warnings.list(),
      now: () => 0
    })
    const view = await status.view()
    assert.deepEqual(view.requests, { local: 3, peer: 1, s3: 0, upstream: 0, stale: 0, misses: 1 })
    assert.equal(view.hitRatio, 0.75)
    assert.equal(view.bytes.saved, 600)
    assert.equal(view.upstreamRequestsSaved, 4)
    assert.deepEqual(view.peers.map(p => [p.peerId, p.connected, p.dataReachable, p.bytesReceived]), [
      ['Here', true, false, 0],
      ['Gone', false, true, 50]
    ])
    assert.deepEqual(view.images.mostPulled.map(i => i.image), ['r/small', 'r/big'])
    assert.deepEqual(view.images.largest.map(i => i.image), ['r/big', 'r/small'])
    assert.deepEqual(view.store, { size: 300, maxSize: 1000, full: false, pinned: { blobs: 1, bytes: 100 } })
    assert.deepEqual(view.warnings.map(w => w.msg), ['second', 'first'])
    await status.view()
    assert.equal(reads, 1, 'pins are counted once per 30 s, not per view')
  })

  it('createLogger keeps each warning and error with its component, and still logs every line as before', () => {
    const warnings = new RecentWarnings(2)
    const lines: string[] = []
    const log = createLogger('info', warnings, {
      write (line: string) {
        lines.push(line)
      }
    })
    log.info('fine')
    log.child({ component: 'store' }).warn({ digest: 'x' }, 'disk nearly full')
    log.error({ component: 'p2p' }, 'cannot dial')
    log.warn('third')
    assert.deepEqual(warnings.list().map(w => [w.level, w.component, w.msg]), [
      ['error', 'p2p', 'cannot dial'],
      ['warn', undefined, 'third']
    ])
    assert.equal(lines.length, 4)
    assert.match(lines[1] ?? '', /"component":"store","digest":"x","msg":"disk nearly full"/)
  })
})
