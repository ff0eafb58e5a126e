import assert from 'node:assert/strict'
import { ApiPeers, swarmKey } from '../../../src/apicache/peers.js'
import type { CandidateQuery } from '../../../src/apicache/candidate-search.js'
import { apiKey } from '../../../src/keys/api-key.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { FakePeerNetwork } from '../fakes/peer-network.js'
import { peerInit } from '../resolver/setup.js'

const RESOURCE = 'github /repos/octo/hello'
const BODY = Buffer.from('{"full_name":"octo/hello"}')
const LAST_MODIFIED = 'Thu, 01 Jan 2026 00:00:00 GMT'

describe("apicache peers: the API cache's part in the swarm", () => {
  const query = (q: Partial<CandidateQuery> = {}): CandidateQuery => ({
    resource: RESOURCE,
    accept: '',
    scope: 'mine',
    identity: undefined,
    own: undefined,
    shared: true,
    ...q
  })

  it("swarmKey: the record's key when a peer can parse it back; none for what peers refuse or misread", () => {
    assert.equal(swarmKey(RESOURCE, 'application/vnd.github+json'), apiKey(RESOURCE, ''))
    assert.equal(swarmKey(`github /${'p'.repeat(401)}`, ''), undefined, 'path over 400 characters')
    assert.equal(swarmKey(RESOURCE, `a/${'b'.repeat(200)}`), undefined, 'Accept over 200 characters')
    assert.equal(swarmKey(`${'u'.repeat(65)} /x`, ''), undefined, 'upstream name over 64')
    assert.equal(swarmKey(RESOURCE, 'a#b'), undefined, 'a # in the Accept would name another record')
  })

  it('announces and withdraws records under their swarm key; without a swarm, nothing', async () => {
    const net = await FakePeerNetwork.create()
    const peers = new ApiPeers({ peers: peerInit(net), maxBody: 1024 })
    peers.announce(RESOURCE, '')
    peers.announce(RESOURCE, 'a#b')
    peers.withdraw(apiKey(RESOURCE, ''))
    assert.deepEqual(net.announced, [apiKey(RESOURCE, '')])
    assert.deepEqual(net.forgotten, [apiKey(RESOURCE, '')])
    const alone = new ApiPeers({ maxBody: 1024 })
    alone.announce(RESOURCE, '')
    assert.equal(await alone.candidate(query()), undefined)
  })

  it("a peer's record is a candidate with its verified body, revalidated by Last-Modified unless the fleet identity received its ETag", async () => {
    const net = await FakePeerNetwork.create()
    const holder = await net.addPeer('a')
    holder.holdApi(apiKey(RESOURCE, ''), {
      status: 200,
      headers: { etag: 'W/"1"', 'last-modified': LAST_MODIFIED },
      body: sha256Digest(BODY),
      validator: 'id-1'
    }, BODY)
    const peers = new ApiPeers({ peers: peerInit(net), maxBody: 1024 })
    const forClient = await peers.candidate(query())
    assert.equal(forClient?.body.toString(), BODY.toString())
    assert.equal(forClient?.peer, holder.name)
    assert.equal(forClient?.ownEtag, false)
    assert.equal((await peers.candidate(query({ identity: 'id-1' })))?.ownEtag, true)
    assert.equal((await peers.candidate(query({ identity: 'id-2' })))?.ownEtag, false)
  })

  it("a peer's record the credential can't revalidate (an ETag only, not its own) is refused: no candidate", async () => {
    const net = await FakePeerNetwork.create()
    const holder = await net.addPeer('a')
    holder.holdApi(apiKey(RESOURCE, ''), { status: 200, headers: { etag: 'W/"1"' }, body: sha256Digest(BODY), validator: 'id-1' }, BODY)
    const peers = new ApiPeers({ peers: peerInit(net), maxBody: 1024 })
    assert.equal(await peers.candidate(query()), undefined)
    assert.equal((await peers.candidate(query({ identity: 'id-1' })))?.ownEtag, true)
  })

  it('a body over maxBody is not taken from a peer', async () => {
    const net = await FakePeerNetwork.create()
    const holder = await net.addPeer('a')
    holder.holdApi(apiKey(RESOURCE, ''), {
      status: 200,
      headers: { 'last-modified': LAST_MODIFIED },
      body: sha256Digest(BODY),
      validator: 'id-1'
    }, BODY)
    const peers = new ApiPeers({ peers: peerInit(net), maxBody: BODY.byteLength - 1 })
    assert.equal(await peers.candidate(query()), undefined)
  })
})
