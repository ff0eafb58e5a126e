import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { p2pStartError } from '../../../src/sidecar/swarm.js'

const config = { listenAddrs: [multiaddr('/ip4/0.0.0.0/tcp/9000')] }

describe('p2pStartError: one line for a P2P node that could not listen (issue 29)', () => {
  it('a port in use: names it and the other sidecar whose data channel (P2P port + 1) may hold it; no libp2p advice, no stack', () => {
    const err = p2pStartError(
      new Error([
        'Some configured addresses failed to listen: /ip4/0.0.0.0/tcp/9000: Error: listen EADDRINUSE: address already in use 0.0.0.0:9000',
        '    at Server.setupListenHandle [as _listen2] (node:net:1817:16)',
        'If you wish to continue listening on the addresses that did not fail, set transportManager.faultTolerance'
      ].join('\n')),
      config
    )
    assert.equal(err.exitCode, 2)
    assert.match(err.message, /^could not start the peer-to-peer node: TCP port 9000 \(0\.0\.0\.0\) is already in use/)
    assert.match(err.message, /a sidecar with CACHE_P2P_PORT=8999 holds 9000 too/)
    assert.match(err.message, /CACHE_P2P_PORT=9002/)
    assert.doesNotMatch(err.message, /faultTolerance|node:net|\n/)
  })

  it('an address not of this host: the reason, and CACHE_LISTEN_ADDRS', () => {
    const err = p2pStartError(new Error('listen EADDRNOTAVAIL: address not available 10.9.9.9:9000\n    at x (y.js:1:1)'), config)
    assert.match(
      err.message,
      /^could not start the peer-to-peer node on \/ip4\/0\.0\.0\.0\/tcp\/9000: listen EADDRNOTAVAIL.*CACHE_LISTEN_ADDRS/
    )
    assert.doesNotMatch(err.message, /y\.js/)
  })
})
