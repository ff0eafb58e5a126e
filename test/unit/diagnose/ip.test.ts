import assert from 'node:assert/strict'
import { inSubnet, isLoopback, isPrivate } from '../../../src/diagnose/ip.js'

describe('diagnose ip helpers', () => {
  it('inSubnet matches IPv4 addresses against a CIDR, /0 to /32', () => {
    assert.equal(inSubnet('172.17.0.2', '172.17.0.0/16'), true)
    assert.equal(inSubnet('172.18.0.2', '172.17.0.0/16'), false)
    assert.equal(inSubnet('203.0.113.9', '0.0.0.0/0'), true)
    assert.equal(inSubnet('10.0.0.1', '10.0.0.1/32'), true)
    assert.equal(inSubnet('10.0.0.2', '10.0.0.1/32'), false)
    assert.equal(inSubnet('10.0.0.1', '10.0.0.1'), true, 'no prefix length: one address')
  })

  it('inSubnet is false for IPv6, malformed addresses and bad prefix lengths', () => {
    assert.equal(inSubnet('::1', '127.0.0.0/8'), false)
    assert.equal(inSubnet('10.0.0.256', '10.0.0.0/8'), false)
    assert.equal(inSubnet('10.0.0.1', '10.0.0.0/33'), false)
    assert.equal(inSubnet('10.0.0.1', 'garbage/8'), false)
  })

  it('loopback is 127.0.0.0/8 and ::1', () => {
    assert.equal(isLoopback('127.0.0.1'), true)
    assert.equal(isLoopback('127.1.2.3'), true)
    assert.equal(isLoopback('::1'), true)
    assert.equal(isLoopback('128.0.0.1'), false)
  })

  it('private is RFC 1918, CGNAT 100.64/10 and IPv6 ULA fc00::/7', () => {
    for (const a of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', 'fd12::1', 'FC00::1']) {
      assert.equal(isPrivate(a), true, a)
    }
    for (const a of ['172.32.0.1', '8.8.8.8', '100.128.0.1', '2001:db8::1']) assert.equal(isPrivate(a), false, a)
  })
})
