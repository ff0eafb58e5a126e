import { chmod, link, mkdir, open, readFile, rm, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import { IDENTITY_FILE } from './constants.js'
import { P2pCacheError, EXIT_USAGE } from '../errors/p2p-cache-error.js'

export class IdentityError extends P2pCacheError {
  constructor (message: string) {
    super(message, { exitCode: EXIT_USAGE })
  }
}

/**
 * The node's private key, kept in CACHE_DIR so the peer ID (and every bootstrap address other
 * runners hold) survives restarts. Created on first use with mode 0600, written atomically.
 */
export async function loadOrCreateIdentity (dir: string, log?: Logger): Promise<PrivateKey> {
  const path = join(dir, IDENTITY_FILE)
  let bytes: Buffer | undefined
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (bytes !== undefined) {
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new IdentityError(
        `${path} is not a libp2p private key (${
          (err as Error).message
        }); restore it from a backup, or delete it to get a new peer ID (other runners must then update CACHE_BOOTSTRAP_PEERS)`
      )
    }
    const mode = (await stat(path)).mode & 0o777
    if ((mode & 0o077) !== 0) {
      log?.warn({ path, mode: mode.toString(8) }, 'identity key was readable by others; setting mode 0600')
      await chmod(path, 0o600)
    }
    return key
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dir, { recursive: true })
  // Random, not the pid: in a container the pid is 1 on every start, and a leftover would block.
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  const file = await open(tmp, 'wx', 0o600)
  try {
    await file.writeFile(privateKeyToProtobuf(key))
    await file.sync()
  } finally {
    await file.close()
  }
  try {
    // link() fails if the file exists: of two processes creating the identity at once, the
    // first wins and both read its key back (a rename would let the second replace it).
    await link(tmp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    await rm(tmp, { force: true })
  }
  log?.info({ path }, 'created a new node identity')
  return privateKeyFromProtobuf(await readFile(path))
}
