import assert from 'node:assert/strict'
import { liveFindings, type LiveSidecar } from '../../../src/diagnose/live.js'
import type { P2pInfo } from '../../../src/admin/admin-routes.js'

const URL_ = 'http://127.0.0.1:9080'

function sidecar (over: Partial<LiveSidecar> = {}, p2p: Partial<P2pInfo> | null = {}): LiveSidecar {
  return {
    url: URL_,
    rttMs: 1.23,
    status: { healthz: 200, readyz: 200, v2: 200 },
    ...(p2p !== null
      ? {
        p2p: {
          peerId: '12D3KooWself',
          addrs: [],
          peers: [{ peerId: '12D3KooWother', addrs: [] }],
          uploads: 0,
          routingTable: 1,
          lastPeerHitAt: null,
          dataPort: 9001,
          dataUnreachable: [],
          ...p2p
        }
      }
      : {}),
    ...over
  }
}

describe("diagnose live: the running sidecar's own view", () => {
  it('no sidecar: a failure when --http named one, else skipped', () => {
    const [explicit] = liveFindings(URL_, undefined, true, false)
    assert.equal(explicit?.verdict, 'fail')
    assert.match(explicit?.fix ?? '', /p2p-cache serve.*--http http:\/\/<host>:9080/)
    assert.equal(liveFindings(URL_, undefined, false, false)[0]?.verdict, 'skip')
  })

  it('a failing /healthz or /v2/ fails; a sidecar not ready yet is a warning', () => {
    assert.equal(liveFindings(URL_, sidecar({ status: { healthz: 200, readyz: 200, v2: 500 } }), false, false)[0]?.verdict, 'fail')
    const starting = liveFindings(URL_, sidecar({ status: { healthz: 200, readyz: 503, v2: 200 } }), false, false)[0]
    assert.equal(starting?.verdict, 'warn')
    assert.match(starting?.summary ?? '', /alive but not ready \(\/readyz 503\)/)
  })

  it('a healthy sidecar with peers and its data channel: all ok', () => {
    const findings = liveFindings(URL_, sidecar(), false, true)
    assert.deepEqual(findings.map(f => [f.check, f.verdict]), [['sidecar.http', 'ok'], ['sidecar.peers', 'ok'], ['sidecar.data', 'ok']])
    assert.match(findings[1]?.summary ?? '', /has 1 peer, 1 in its routing table/)
  })

  it('the P2P layer off is a warning to turn CACHE_ENABLE_P2P on', () => {
    const peers = liveFindings(URL_, sidecar({}, null), false, false)[1]
    assert.equal(peers?.verdict, 'warn')
    assert.equal(peers?.fix, 'start it with CACHE_ENABLE_P2P=true (the default)')
  })

  it('no peers: the fix depends on whether bootstrap peers are configured', () => {
    const alone = liveFindings(URL_, sidecar({}, { peers: [] }), false, false)[1]
    assert.match(alone?.fix ?? '', /CACHE_BOOTSTRAP_PEERS=/)
    const unreachable = liveFindings(URL_, sidecar({}, { peers: [] }), false, true)[1]
    assert.match(unreachable?.fix ?? '', /its bootstrap peers are unreachable/)
  })

  it('the data channel off, or peers whose data port is unreachable, are warnings with the port to open', () => {
    const off = liveFindings(URL_, sidecar({}, { dataPort: null }), false, true).find(f => f.check === 'sidecar.data')
    assert.match(off?.fix ?? '', /unset CACHE_P2P_DATA_PORT=off/)
    const blocked = liveFindings(URL_, sidecar({}, { dataUnreachable: ['12D3KooWa', '12D3KooWb'] }), false, true).find(f =>
      f.check === 'sidecar.data'
    )
    assert.equal(blocked?.verdict, 'warn')
    assert.match(blocked?.summary ?? '', /of 2 peers \(12D3KooWa, 12D3KooWb\)/)
    assert.match(blocked?.fix ?? '', /-p 9001:9001/)
  })
})
