import assert from 'node:assert/strict'
import { forbiddenReason, guardedLookup, isLocalAddress, literalRefusal, parseAuthority, refusal } from '../../../src/proxy/destination.js'

describe('proxy destinations: where the proxy never connects', () => {
  it('parseAuthority: host:port and [v6]:port; the port is required and in range', () => {
    assert.deepEqual(parseAuthority('ghcr.io:443'), { host: 'ghcr.io', port: 443 })
    assert.deepEqual(parseAuthority('[fe80::1]:443'), { host: 'fe80::1', port: 443 })
    for (const bad of ['ghcr.io', 'ghcr.io:0', 'ghcr.io:70000', 'http://ghcr.io:443', ':443', 'a b:443']) {
      assert.equal(parseAuthority(bad), undefined, bad)
    }
  })

  it('link-local, the cloud metadata addresses and their IPv4-mapped forms are forbidden', () => {
    for (const ip of ['169.254.169.254', '169.254.0.1', 'fe80::1', 'fd00:ec2::254', '::ffff:169.254.169.254']) {
      assert.match(forbiddenReason(ip) ?? '', /link-local or cloud metadata/, ip)
    }
    for (const ip of ['10.0.0.1', '140.82.112.33', 'fd00:ec2::253', '::1']) assert.equal(forbiddenReason(ip), undefined, ip)
  })

  it("the sidecar's own ports on this host are refused, other ports and hosts are not", () => {
    const own = (): number[] => [9080, 3128]
    assert.ok(isLocalAddress('127.0.0.1') && isLocalAddress('::1') && isLocalAddress('0.0.0.0'))
    assert.match(refusal('127.0.0.1', 9080, own) ?? '', /own port/)
    assert.match(refusal('127.0.0.2', 3128, own) ?? '', /own port/)
    assert.equal(refusal('127.0.0.1', 5000, own), undefined)
    assert.equal(refusal('10.255.255.1', 9080, own), undefined)
  })

  it('an IP address target is checked before connecting (Node never calls lookup for one); a name is left to guardedLookup', () => {
    assert.equal(literalRefusal('169.254.169.254', 443, () => [])?.status, 403)
    assert.equal(literalRefusal('127.0.0.1', 9080, () => [9080])?.status, 403)
    assert.equal(literalRefusal('127.0.0.1', 5000, () => [9080]), undefined)
    assert.equal(literalRefusal('metadata.google.internal', 80, () => []), undefined)
  })

  it('guardedLookup refuses a name that resolves to a forbidden address, with code EPROXYREFUSED', async () => {
    const lookup = guardedLookup(80, () => [])
    const err = await new Promise<NodeJS.ErrnoException | null>(resolve => {
      lookup('169.254.169.254', {}, e => {
        resolve(e)
      })
    })
    assert.equal(err?.code, 'EPROXYREFUSED')
    const ok = await new Promise<string>((resolve, reject) => {
      lookup('127.0.0.1', {}, (e, address) => {
        if (e !== null) reject(e)
        else resolve(address as string)
      })
    })
    assert.equal(ok, '127.0.0.1')
  })
})
