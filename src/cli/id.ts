import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadConfig, type ConfigSource } from '../config/load.js'
import { dialableAddrs } from '../p2p/addresses.js'
import { loadOrCreateIdentity } from '../p2p/identity.js'

/**
 * Prints this node's peer ID and the addresses other runners put in CACHE_BOOTSTRAP_PEERS.
 * Reads only the identity file, so it works whether or not a sidecar runs on CACHE_DIR.
 */
export async function idCommand (flags: ConfigSource, opts: { json?: boolean }): Promise<void> {
  const config = loadConfig(flags)
  const key = await loadOrCreateIdentity(config.dir)
  const peerId = peerIdFromPrivateKey(key).toString()
  const addrs = dialableAddrs(config.listenAddrs, config.announceAddrs, peerId)
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify({ peerId, addrs }, null, 2)}\n`)
    return
  }
  process.stdout.write(`${[peerId, ...addrs].join('\n')}\n`)
}
