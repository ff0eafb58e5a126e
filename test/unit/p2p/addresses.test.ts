import assert from 'node:assert/strict'
import {
  AddressError,
  dialableAddrs,
  parseAddrList,
  parseAnnounceAddr,
  parseBootstrapAddr,
  parseListenAddr,
  pinnedPeerId,
  splitList
} from '../../../src/p2p/addresses.js'
import { parseSwarmKey, newSwarmKey } from '../../../src/p2p/swarm-key.js'
import { blobCid, recordCid } from '../../../src/p2p/content-id.js'
import { parseTagKey, tagKey } from '../../../src/oci/tag-key.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { networkInterfaces } from 'node:os'

const ID = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'

describe('p2p addresses, keys and content ids', () => {
  it('accepts every bootstrap form the README names', () => {
    for (const a of [
      `/ip4/10.0.0.1/tcp/9000/p2p/${ID}`,
      `/ip6/::1/tcp/9000/p2p/${ID}`,
      `/dns4/cache-seed/tcp/9000/p2p/${ID}`,
      `/dns6/seed.example/tcp/9000/p2p/${ID}`,
      `/dnsaddr/bootstrap.example/p2p/${ID}`,
      '/dns4/cache-b/tcp/9000',
      '/ip4/10.0.0.1/tcp/9000'
    ]) {
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
      assert.throws(
        () => parseAddrList(`/ip4/10.0.0.2/tcp/1/p2p/${ID},${entry}`, parseBootstrapAddr),
        (err: unknown) => err instanceof AddressError && err.entry === entry && why.test(err.reason)
      )
    }
    assert.throws(() => parseListenAddr('/dns4/host/tcp/1'), AddressError)
    assert.throws(() => parseAnnounceAddr('/ip4/1.2.3.4/udp/1'), AddressError)
  })

  it('prints dialable addresses: announce ones as given, wildcards expanded, /p2p/<id> appended', () => {
    assert.deepEqual(dialableAddrs([parseListenAddr('/ip4/0.0.0.0/tcp/9000')], [parseAnnounceAddr('/ip4/203.0.113.7/tcp/9000')], ID), [
      `/ip4/203.0.113.7/tcp/9000/p2p/${ID}`
    ])
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

describe('p2p addresses: listen, announce and bootstrap values', () => {
  it('lists split on commas and any whitespace, empty entries dropped', () => {
    assert.deepEqual(splitList(' a,b\n\tc ,, d '), ['a', 'b', 'c', 'd'])
    assert.deepEqual(splitList(' , \n'), [])
    assert.deepEqual(parseAddrList('', parseListenAddr), [])
  })

  it('a listen address is an IP and a TCP port, nothing more', () => {
    for (const ok of ['/ip4/0.0.0.0/tcp/9000', '/ip6/::/tcp/0', '/ip4/127.0.0.1/tcp/65535']) {
      assert.equal(parseListenAddr(ok).toString(), ok)
    }
    for (const bad of ['/dns4/host/tcp/1', '/ip4/1.2.3.4', '/ip4/1.2.3.4/tcp/1/ws', `/ip4/1.2.3.4/tcp/1/p2p/${ID}`, '/tcp/1']) {
      assert.throws(
        () => parseListenAddr(bad),
        (err: unknown) => err instanceof AddressError && err.entry === bad && /\/ip4\/<address>\/tcp\/<port>/.test(err.reason)
      )
    }
  })

  it('an announce address may be a DNS name and may end in its own /p2p/<id>', () => {
    for (const ok of ['/dns4/runner-7.internal/tcp/9000', '/dns/cache/tcp/1', `/ip4/203.0.113.7/tcp/9000/p2p/${ID}`]) {
      assert.equal(parseAnnounceAddr(ok).toString(), ok)
    }
    for (const bad of ['/dnsaddr/x.example', '/ip4/1.2.3.4/tcp/1/ws', `/ip4/1.2.3.4/tcp/1/p2p/${ID}/p2p/${ID}`]) {
      assert.throws(() => parseAnnounceAddr(bad), AddressError)
    }
  })

  it('an AddressError message quotes the entry and gives the reason', () => {
    const err = new AddressError('/ip4/1.2.3/tcp/x', 'bad IP')
    assert.equal(err.message, '"/ip4/1.2.3/tcp/x": bad IP')
    assert.equal(err.name, 'AddressError')
  })

  it('pinnedPeerId reads the /p2p/<id> of a bootstrap address, if there is one', () => {
    assert.equal(pinnedPeerId(parseBootstrapAddr(`/dns4/seed/tcp/9000/p2p/${ID}`)), ID)
    assert.equal(pinnedPeerId(parseBootstrapAddr('/dns4/seed/tcp/9000')), undefined)
  })

  it('dialable addresses: an announce address with its own /p2p/ is not given a second; duplicates collapse', () => {
    const announce = [parseAnnounceAddr(`/ip4/203.0.113.7/tcp/9000/p2p/${ID}`), parseAnnounceAddr('/ip4/203.0.113.7/tcp/9000')]
    assert.deepEqual(dialableAddrs([], announce, ID), [`/ip4/203.0.113.7/tcp/9000/p2p/${ID}`])
  })

  it("dialable addresses: an IPv6 wildcard expands to this machine's IPv6 addresses, never link-local ones, non-loopback first", () => {
    const out = dialableAddrs([parseListenAddr('/ip6/::/tcp/9000')], [], ID)
    const v6 = Object.values(networkInterfaces()).flatMap(l => l ?? []).filter(i => i.family === 'IPv6' && !i.address.startsWith('fe80'))
    assert.equal(out.length, new Set(v6.map(i => i.address)).size)
    for (const a of out) assert.match(a, new RegExp(`^/ip6/[^/]+/tcp/9000/p2p/${ID}$`))
    assert.ok(!out.some(a => a.startsWith('/ip6/fe80')))
    const loopback = out.indexOf(`/ip6/::1/tcp/9000/p2p/${ID}`)
    if (loopback >= 0) assert.equal(loopback, out.length - 1, 'loopback last')
  })
})
