import { randomBytes } from 'node:crypto'

const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'

/** A new pre-shared key as 64 hex characters: one line, easy to put in an env var. */
export function newSwarmKey (): string {
  return randomBytes(32).toString('hex')
}

/**
 * Reads CACHE_SWARM_KEY: 64 hex characters, or the three-line `swarm.key` text used by IPFS
 * and libp2p (`/key/swarm/psk/1.0.0/`, `/base16/`, key). Returns the key in the form
 * @libp2p/pnet takes, or undefined when the text is neither.
 */
export function parseSwarmKey (text: string): Uint8Array | undefined {
  const lines = text.trim().split(/\r?\n|\\n/).map(l => l.trim()).filter(Boolean)
  const hex = lines.length === 1
    ? lines[0]
    : lines.length === 3 && lines[0] === '/key/swarm/psk/1.0.0/' && lines[1] === '/base16/'
    ? lines[2]
    : undefined
  if (hex === undefined || !/^[0-9a-fA-F]{64}$/.test(hex)) return undefined
  return new TextEncoder().encode(HEADER + hex.toLowerCase())
}
