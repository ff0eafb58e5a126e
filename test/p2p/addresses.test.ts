import assert from 'node:assert/strict'
import { AddressError, dialableAddrs, parseAddrList, parseAnnounceAddr, parseBootstrapAddr, parseListenAddr } from '../../src/p2p/addresses.js'
import { parseSwarmKey, newSwarmKey } from '../../src/p2p/swarm-key.js'
import { blobCid, recordCid } from '../../src/p2p/content-id.js'
import { parseTagKey, tagKey } from '../../src/oci/tag-key.js'
import { sha256Digest } from '../../src/oci/digest.js'

const ID = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'

describe('p2p addresses, keys and content ids', () => {
  it('accepts every bootstrap form the README names', () => {
    for (const a of [`/ip4/10.0.0.1/tcp/9000/p2p/${ID}`, `/ip6/::1/tcp/9000/p2p/${ID}`, `/dns4/cache-seed/tcp/9000/p2p/${ID}`,
      `/dns6/seed.example/tcp/9000/p2p/${ID}`, `/dnsaddr/bootstrap.example/p2p/${ID}`,
      '/dns4/cache-b/tcp/9000', '/ip4/10.0.0.1/tcp/9000']) {
      assert.equal(parseBootstrapAddr(a).toString(), a)
    }
    assert.equal(parseAddrList(` /ip4/10.0.0.1/tcp/1/p2p/${ID},  /dns4/x/tcp/2/p2p/${ID}\n`, parseBootstrapAddr).length, 2)
  })

  it('names the bad entry of a list and says why', () => {
    const cases: Array<[string, RegExp]> = [
      ['/dnsaddr/bootstrap.example', /ends in \/p2p\/<peer id>/],
      ['/ip4/10.0.0.1/tcp/9000/ws', /expected \/ip4/],
      [`/ip4/10.0.0.1/udp/9000/p2p/${ID}`, /expected \/ip4/],
      ['/ip4/10.0.0.1/tcp/1/p2p/QmNotAPeer', /is not a peer ID/],
      ['10.0.0.1:9000', /must start with "\/"/]
    ]
    for (const [entry, why] of cases) {
      assert.throws(() => parseAddrList(`/ip4/10.0.0.2/tcp/1/p2p/${ID},${entry}`, parseBootstrapAddr),
        (err: unknown) => err instanceof AddressError && err.entry === entry && why.test(err.reason))
    }
    assert.throws(() => parseListenAddr('/dns4/host/tcp/1'), AddressError)
    assert.throws(() => parseAnnounceAddr('/ip4/1.2.3.4/udp/1'), AddressError)
  })

  it('prints dialable addresses: announce ones as given, wildcards expanded, /p2p/<id> appended', () => {
    assert.deepEqual(dialableAddrs([parseListenAddr('/ip4/0.0.0.0/tcp/9000')], [parseAnnounceAddr('/ip4/203.0.113.7/tcp/9000')], ID),
      [`/ip4/203.0.113.7/tcp/9000/p2p/${ID}`])
    const expanded = dialableAddrs([parseListenAddr('/ip4/0.0.0.0/tcp/9000')], [], ID)
    assert.ok(expanded.includes(`/ip4/127.0.0.1/tcp/9000/p2p/${ID}`))
    assert.ok(expanded.every(a => !a.includes('0.0.0.0')))
    assert.deepEqual(dialableAddrs([parseListenAddr('/ip4/127.0.0.1/tcp/9100')], [], ID), [`/ip4/127.0.0.1/tcp/9100/p2p/${ID}`])
  })

  it('reads swarm keys as 64 hex characters or swarm.key text, and nothing else', () => {
    const hex = newSwarmKey()
    assert.match(hex, /^[0-9a-f]{64}$/)
    const fromHex = parseSwarmKey(hex)
    const fromFile = parseSwarmKey(`/key/swarm/psk/1.0.0/\n/base16/\n${hex.toUpperCase()}\n`)
    assert.ok(fromHex !== undefined && fromFile !== undefined)
    assert.deepEqual(fromHex, fromFile)
    for (const bad of ['', 'abc', hex.slice(1), `/key/swarm/psk/1.0.0/\n/base64/\n${hex}`]) assert.equal(parseSwarmKey(bad), undefined)
  })

  it('keys a blob by its own digest (CID v1 raw sha2-256) and a tag by sha256 of its key', () => {
    const digest = sha256Digest(Buffer.from('layer'))
    const cid = blobCid(digest)
    assert.equal(cid.version, 1)
    assert.equal(cid.code, 0x55)
    assert.equal(cid.multihash.code, 0x12)
    assert.equal(Buffer.from(cid.multihash.digest).toString('hex'), digest.slice(7))
    const key = tagKey('docker.io', 'library/alpine', '3.20', 'index')
    assert.deepEqual(parseTagKey(key), { upstream: 'docker.io', repo: 'library/alpine', tag: '3.20', acceptClass: 'index' })
    assert.notEqual(recordCid(key).toString(), recordCid(tagKey('docker.io', 'library/alpine', '3.20', 'single')).toString())
    assert.equal(parseTagKey('tag:docker.io/../etc:x#index'), undefined)
  })
})
