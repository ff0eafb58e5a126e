import assert from 'node:assert/strict'
import { ConfigError } from '../../../src/errors/config-error.js'

describe('ConfigError: one line naming the variable, the value and what is expected', () => {
  it('quotes the value as JSON so spaces, quotes and control characters stay visible on one line', () => {
    const err = new ConfigError('CACHE_MAX_SIZE', '20 "X"\nB', 'a size like 20GB')
    assert.equal(err.message, 'invalid CACHE_MAX_SIZE="20 \\"X\\"\\nB": expected a size like 20GB')
    assert.ok(!err.message.includes('\n'))
    assert.equal(err.name, 'ConfigError')
    assert.ok(err instanceof Error)
    assert.equal(err.variable, 'CACHE_MAX_SIZE')
  })

  it('names the bad part of a list or file instead of the whole value', () => {
    const err = new ConfigError('CACHE_LISTEN_ADDRS', '/ip4/1.2.3.4/tcp/1,bad', 'multiaddrs', 'entry "bad": not a multiaddr')
    assert.equal(err.message, 'invalid CACHE_LISTEN_ADDRS entry "bad": not a multiaddr; expected multiaddrs')
  })

  it('never shows a secret value', () => {
    const err = new ConfigError('CACHE_SWARM_KEY', 'f00d', '64 hex characters', undefined, true)
    assert.equal(err.message, 'invalid CACHE_SWARM_KEY (value not shown): expected 64 hex characters')
    assert.ok(!err.message.includes('f00d'))
  })
})
