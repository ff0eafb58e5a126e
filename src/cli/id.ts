import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadConfig, type ConfigSource } from '../config/load.js'
import { dialableAddrs } from '../p2p/addresses.js'
import { IDENTITY_FILE } from '../p2p/constants.js'
import { IdentityError, loadOrCreateIdentity } from '../p2p/identity.js'
import { sidecarUrlFor } from '../http/sidecar-url.js'
import { SidecarClient } from '../admin/client/client.js'

/** How long `id` waits for a sidecar on CACHE_HTTP_ADDR to say who it is. */
const LIVE_ID_TIMEOUT_MS = 1_000

/**
 * Prints this node's peer ID and the addresses other runners put in CACHE_BOOTSTRAP_PEERS.
 * Reads the identity file of CACHE_DIR. A sidecar answering on CACHE_HTTP_ADDR with another
 * identity (it runs with another CACHE_DIR, e.g. in a container) is said on stderr; when
 * CACHE_DIR has no identity yet and such a sidecar answers, no new one is made: the error
 * says where the running one is.
 * @throws IdentityError (exit 2) in that last case
 */
export async function idCommand (flags: ConfigSource, opts: { json?: boolean }): Promise<void> {
  const config = loadConfig(flags)
  const url = sidecarUrlFor(config.httpAddr)
  const live = await livePeerId(url)
  const exists = await access(join(config.dir, IDENTITY_FILE)).then(() => true, () => false)
  if (!exists && live !== undefined) {
    throw new IdentityError(
      `CACHE_DIR=${config.dir} has no identity yet, but the sidecar at ${url} is ${live}: run \`p2p-cache id\` with its CACHE_DIR (in a container: docker exec <container> p2p-cache id), or read ${url}/api/p2p`
    )
  }
  const key = await loadOrCreateIdentity(config.dir)
  const peerId = peerIdFromPrivateKey(key).toString()
  if (live !== undefined && live !== peerId) {
    process.stderr.write(
      `p2p-cache: warning: the sidecar answering at ${url} is ${live}, not ${peerId} of CACHE_DIR=${config.dir}; the addresses below are for this CACHE_DIR's node\n`
    )
  }
  const addrs = dialableAddrs(config.listenAddrs, config.announceAddrs, peerId)
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify({ peerId, addrs }, null, 2)}\n`)
    return
  }
  process.stdout.write(`${[peerId, ...addrs].join('\n')}\n`)
}

/** The peer ID of a sidecar answering `/api/p2p` at `url`, or undefined (none, P2P off, or not a sidecar). */
async function livePeerId (url: string): Promise<string | undefined> {
  // Only a hint for the messages above: any failure means "no sidecar to compare with".
  const info = await new SidecarClient(url, { timeoutMs: LIVE_ID_TIMEOUT_MS }).p2pInfo().catch(() => undefined)
  const peerId: unknown = info?.peerId
  return typeof peerId === 'string' ? peerId : undefined
}
