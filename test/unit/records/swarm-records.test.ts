import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { SwarmRecords, type RecordKind } from '../../../src/records/swarm-records.js'
import { isRecordKey, parseRecordKey, recordKey } from '../../../src/keys/record-key.js'
import { urlRecordKind } from '../../../src/proxy/download-intercept.js'
import { localTagKind, type LocalTag } from '../../../src/push/local-registry.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { FakePeerNetwork } from '../fakes/peer-network.js'
import { peerInit } from '../resolver/setup.js'
import { silentLog } from '../fakes/log.js'

const URL_A = 'https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz'
const DIGEST = sha256Digest(Buffer.from('left-pad'))

describe('swarm records: small records per kind, shared over the swarm when the kind says so', () => {
  let dir: string
  let db: Level<string, unknown>
  let net: FakePeerNetwork

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swarm-records-unit-'))
    db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
    await db.open()
    net = await FakePeerNetwork.create()
  })

  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('record keys: rec:<kind> <name>, no whitespace in the name', () => {
    assert.equal(recordKey('url', URL_A), `rec:url ${URL_A}`)
    assert.ok(isRecordKey(recordKey('url', URL_A)))
    assert.deepEqual(parseRecordKey(`rec:url ${URL_A}`), { kind: 'url', name: URL_A })
    for (const bad of ['rec:url', 'rec:URL x', 'rec:url a b', 'rec: x', `rec:url ${'x'.repeat(601)}`]) {
      assert.equal(isRecordKey(bad), false, bad)
    }
  })

  it('a shared kind is announced when kept, answered to peers, and found on a peer (checked, then kept here)', async () => {
    const records = new SwarmRecords({ db, peers: peerInit(net), log: silentLog() })
    const urls = records.define(urlRecordKind(true))
    await urls.put(URL_A, { digest: DIGEST, size: 8, contentType: 'application/octet-stream' })
    assert.deepEqual(net.announced, [recordKey('url', URL_A)])
    const answer = await records.answer(recordKey('url', URL_A))
    assert.deepEqual(JSON.parse(answer?.value ?? '{}'), { digest: DIGEST, size: 8, contentType: 'application/octet-stream' })
    const keys = []
    for await (const k of records.swarmKeys()) keys.push(k)
    assert.deepEqual(keys, [recordKey('url', URL_A)])

    const other = 'https://registry.npmjs.org/b/-/b-1.0.0.tgz'
    const liar = await net.addPeer('liar')
    liar.holdRecord(recordKey('url', other), { value: JSON.stringify({ digest: 'sha256:nothex', size: 1 }), storedAt: 1 })
    const honest = await net.addPeer('honest')
    honest.holdRecord(recordKey('url', other), { value: JSON.stringify({ digest: DIGEST, size: 8 }), storedAt: 5 })
    const found = await urls.find(other)
    assert.equal(found?.value.digest, DIGEST)
    assert.equal(found?.peer, honest.name)
    assert.deepEqual(await urls.get(other), { value: { digest: DIGEST, size: 8 }, storedAt: 5 }, 'kept here, as made')
    await urls.delete(other)
    assert.equal(await urls.get(other), undefined)
    assert.ok(net.forgotten.includes(recordKey('url', other)))
  })

  it("a kind that is not shared is never announced, answered, or asked of peers (an open swarm's URL records)", async () => {
    const records = new SwarmRecords({ db, peers: peerInit(net), log: silentLog() })
    const urls = records.define(urlRecordKind(false))
    await urls.put(URL_A, { digest: DIGEST, size: 8 })
    assert.deepEqual(net.announced, [])
    assert.equal(await records.answer(recordKey('url', URL_A)), undefined)
    const peer = await net.addPeer('p')
    peer.holdRecord(recordKey('url', 'https://x.example/a'), { value: JSON.stringify({ digest: DIGEST, size: 8 }), storedAt: 1 })
    assert.equal(await urls.find('https://x.example/a'), undefined)
    assert.equal(peer.fetches, 0)
    assert.equal((await urls.find(URL_A))?.value.digest, DIGEST, 'its own records it finds')
  })

  it('a kind that changes (newer) asks peers even with a record here, and keeps the newest write', async () => {
    const records = new SwarmRecords({ db, peers: peerInit(net), log: silentLog() })
    const tags = records.define(localTagKind(true))
    const tag = (digest: string, pushedAt: number, writer: string): LocalTag => ({
      digest: digest as LocalTag['digest'],
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: 10,
      pushedAt,
      writer
    })
    const older = sha256Digest(Buffer.from('older'))
    const newer = sha256Digest(Buffer.from('newer'))
    await tags.put('local/app:1', tag(older, 100, 'peer-a'))
    const p1 = await net.addPeer('p1')
    p1.holdRecord(recordKey('push-tag', 'local/app:1'), { value: JSON.stringify(tag(newer, 200, 'peer-b')), storedAt: 1 })
    const p2 = await net.addPeer('p2')
    p2.holdRecord(recordKey('push-tag', 'local/app:1'), { value: JSON.stringify(tag(older, 200, 'peer-a')), storedAt: 1 })
    const found = await tags.find('local/app:1')
    assert.equal(found?.value.digest, newer, 'same millisecond: the writer decides, the same on every node')
    assert.equal((await tags.get('local/app:1'))?.value.digest, newer, 'kept here')
  })

  it("a listed kind: each group has a listing key, answered with its listed names; names() joins this node's and its peers'", async () => {
    const records = new SwarmRecords({ db, peers: peerInit(net), log: silentLog() })
    const tags = records.define(localTagKind(true))
    const tag = (pushedAt: number, deleted?: true): LocalTag => ({
      digest: sha256Digest(Buffer.from(String(pushedAt))),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: 10,
      pushedAt,
      writer: 'w',
      ...(deleted === true ? { deleted } : {})
    })
    await tags.put('local/app:1', tag(1))
    await tags.put('local/app:gone', tag(2, true))
    await tags.put('local/other:1', tag(3))
    assert.ok(net.announced.includes(recordKey('list', 'push-tag/local/app')), "the group's listing key")
    assert.deepEqual(
      JSON.parse((await records.answer(recordKey('list', 'push-tag/local/app')))?.value ?? ''),
      ['local/app:1'],
      'a deleted tag is not listed'
    )
    assert.equal(await records.answer(recordKey('list', 'url/x')), undefined, 'a kind that is not listed')
    const listed = []
    for await (const k of records.swarmKeys()) if (k.startsWith('rec:list ')) listed.push(k)
    assert.deepEqual(
      listed,
      [recordKey('list', 'push-tag/local/app'), recordKey('list', 'push-tag/local/other')],
      'announced again at start-up, once a group'
    )

    const peer = await net.addPeer('p')
    peer.holdRecord(recordKey('list', 'push-tag/local/app'), { value: JSON.stringify(['local/app:2', 'local/app:gone']), storedAt: 1 })
    const liar = await net.addPeer('liar')
    liar.holdRecord(recordKey('list', 'push-tag/local/app'), { value: JSON.stringify(['local/evil:1']), storedAt: 1 })
    assert.deepEqual(
      await tags.names('local/app', 10),
      ['local/app:1', 'local/app:2'],
      "this node's deletion decides; a name outside the group is refused"
    )
    assert.deepEqual(await tags.names('local/app', 1), ['local/app:1'])
  })

  it("a record a peer asks this node to hold (a replica) is kept when it checks out and is not older than this node's", async () => {
    const records = new SwarmRecords({ db, peers: peerInit(net), log: silentLog() })
    const tags = records.define(localTagKind(true))
    const tag = (pushedAt: number): LocalTag => ({
      digest: sha256Digest(Buffer.from(String(pushedAt))),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: 10,
      pushedAt,
      writer: 'w'
    })
    const key = recordKey('push-tag', 'local/app:1')
    assert.deepEqual(
      await records.accept(key, JSON.stringify(tag(5))),
      [key, recordKey('list', 'push-tag/local/app')],
      "kept: found by its key and its group's listing"
    )
    assert.deepEqual(
      await records.accept(key, JSON.stringify(tag(4))),
      [key, recordKey('list', 'push-tag/local/app')],
      'held: this node has a newer write'
    )
    assert.equal((await tags.get('local/app:1'))?.value.pushedAt, 5)
    assert.equal(await records.accept(key, '{"digest":"nope"}'), undefined)
    assert.equal(
      await records.accept(recordKey('url', URL_A), JSON.stringify({ digest: DIGEST, size: 8 })),
      undefined,
      'a kind this node does not define'
    )
  })

  it('a kind is defined once, with a well-formed name', () => {
    const records = new SwarmRecords({ db, log: silentLog() })
    const kind: RecordKind<string> = { kind: 'push-tag', shared: true, parse: v => typeof v === 'string' ? v : undefined }
    records.define(kind)
    assert.throws(() => records.define(kind), /defined twice/)
    assert.throws(() => records.define({ ...kind, kind: 'Bad Kind' }), /malformed/)
  })
})
