import assert from 'node:assert/strict'
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { IdentityError, loadOrCreateIdentity } from '../../../src/p2p/identity.js'
import { IDENTITY_FILE } from '../../../src/p2p/constants.js'

describe('node identity: the private key kept in CACHE_DIR', () => {
  let work: string
  let n = 0
  const freshDir = (): string => join(work, `dir-${n++}`)

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-identity-'))
  })

  after(async () => {
    await rm(work, { recursive: true, force: true })
  })

  it('creates an Ed25519 key on first use, in a directory it makes, readable by the owner only, with no temp file left', async () => {
    const dir = join(freshDir(), 'nested')
    const key = await loadOrCreateIdentity(dir)
    assert.equal(key.type, 'Ed25519')
    const path = join(dir, IDENTITY_FILE)
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    assert.deepEqual(Buffer.from(privateKeyToProtobuf(key)), await readFile(path))
    assert.deepEqual(await readdir(dir), [IDENTITY_FILE])
  })

  it('loads the same key (and so the same peer ID) on every later start', async () => {
    const dir = freshDir()
    const first = peerIdFromPrivateKey(await loadOrCreateIdentity(dir)).toString()
    const again = peerIdFromPrivateKey(await loadOrCreateIdentity(dir)).toString()
    assert.equal(again, first)
  })

  it('two processes creating it at once end up with one key: the first to link wins', async () => {
    const dir = freshDir()
    const keys = await Promise.all(Array.from({ length: 4 }, async () => await loadOrCreateIdentity(dir)))
    const ids = new Set(keys.map(k => peerIdFromPrivateKey(k).toString()))
    assert.equal(ids.size, 1)
    assert.deepEqual(await readdir(dir), [IDENTITY_FILE])
  })

  it('a corrupt key file is an IdentityError naming the file and what to do; the file is left as it was', async () => {
    const dir = freshDir()
    await loadOrCreateIdentity(dir)
    const path = join(dir, IDENTITY_FILE)
    await writeFile(path, 'not a key')
    await assert.rejects(loadOrCreateIdentity(dir), (err: unknown) => {
      assert.ok(err instanceof IdentityError)
      assert.ok(err.message.includes(path), err.message)
      assert.match(err.message, /is not a libp2p private key/)
      assert.match(err.message, /restore it from a backup, or delete it to get a new peer ID/)
      assert.match(err.message, /CACHE_BOOTSTRAP_PEERS/)
      return true
    })
    assert.equal(await readFile(path, 'utf8'), 'not a key')
  })

  it('an empty key file is refused too, not silently replaced', async () => {
    const dir = freshDir()
    await loadOrCreateIdentity(dir)
    await writeFile(join(dir, IDENTITY_FILE), '')
    await assert.rejects(loadOrCreateIdentity(dir), IdentityError)
  })

  it('a key file readable by others is kept and set back to mode 0600', async () => {
    const dir = freshDir()
    const id = peerIdFromPrivateKey(await loadOrCreateIdentity(dir)).toString()
    const path = join(dir, IDENTITY_FILE)
    await chmod(path, 0o644)
    assert.equal(peerIdFromPrivateKey(await loadOrCreateIdentity(dir)).toString(), id)
    assert.equal((await stat(path)).mode & 0o777, 0o600)
  })

  it('a key path that cannot be read (a directory) fails with the file system error, not a new identity', async () => {
    const dir = freshDir()
    await loadOrCreateIdentity(join(dir, IDENTITY_FILE))
    await assert.rejects(loadOrCreateIdentity(dir), (err: NodeJS.ErrnoException) => err.code === 'EISDIR')
  })
})
