import { networkInterfaces } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { P2pCacheError, EXIT_USAGE } from '../errors/p2p-cache-error.js'

/** One entry of an address list that can't be used; `entry` is the text as given. */
export class AddressError extends P2pCacheError {
  constructor (readonly entry: string, readonly reason: string) {
    super(`"${entry}": ${reason}`, { exitCode: EXIT_USAGE })
  }
}

const HOSTS = new Set(['ip4', 'ip6', 'dns4', 'dns6', 'dns'])

export function splitList (text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean)
}

function parse (entry: string): Multiaddr {
  try {
    return multiaddr(entry)
  } catch (err) {
    throw new AddressError(entry, (err as Error).message)
  }
}

/** `/ip4|ip6/<addr>/tcp/<port>`: what the TCP transport can bind. */
export function parseListenAddr (entry: string): Multiaddr {
  const ma = parse(entry)
  const [host, tcp, ...rest] = ma.getComponents()
  if (host === undefined || !['ip4', 'ip6'].includes(host.name) || tcp?.name !== 'tcp' || rest.length > 0) {
    throw new AddressError(entry, 'a listen address is /ip4/<address>/tcp/<port> or /ip6/<address>/tcp/<port>')
  }
  return ma
}

/** `/ip4|ip6|dns4|dns6|dns/<host>/tcp/<port>`: what other nodes should dial. */
export function parseAnnounceAddr (entry: string): Multiaddr {
  const ma = parse(entry)
  const [host, tcp, ...rest] = ma.getComponents()
  if (
    host === undefined || !HOSTS.has(host.name) || tcp?.name !== 'tcp' ||
    (rest.length > 0 && !(rest.length === 1 && rest[0]?.name === 'p2p'))
  ) {
    throw new AddressError(entry, 'an announce address is /ip4|ip6|dns4|dns6/<host>/tcp/<port>')
  }
  return ma
}

/**
 * A bootstrap peer: `/ip4|ip6|dns4|dns6|dns/<host>/tcp/<port>[/p2p/<peer id>]` or
 * `/dnsaddr/<domain>/p2p/<peer id>`. With the peer ID the dial is authenticated (a node that
 * answers with another key is refused); without it (compose service names, where IDs are
 * unknown before the first start) the node trusts whoever answers there and learns its ID.
 */
export function parseBootstrapAddr (entry: string): Multiaddr {
  const ma = parse(entry)
  const parts = ma.getComponents()
  const last = parts[parts.length - 1]
  if (last?.name === 'p2p') {
    try {
      peerIdFromString(last.value ?? '')
    } catch {
      throw new AddressError(entry, `"${last.value ?? ''}" is not a peer ID`)
    }
  }
  const [host, tcp] = parts
  const pinned = last?.name === 'p2p' ? 1 : 0
  const dialable = host?.name === 'dnsaddr'
    ? pinned === 1 && parts.length === 2
    : host !== undefined && HOSTS.has(host.name) && tcp?.name === 'tcp' && parts.length === 2 + pinned
  if (!dialable) {
    throw new AddressError(
      entry,
      host?.name === 'dnsaddr'
        ? 'a /dnsaddr bootstrap address ends in /p2p/<peer id>'
        : 'expected /ip4|ip6|dns4|dns6/<host>/tcp/<port>, optionally ending in /p2p/<peer id> (print it with `p2p-cache id` on that node)'
    )
  }
  return ma
}

/** The peer ID pinned in an address (`/p2p/<id>`), if any. */
export function pinnedPeerId (ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast(c => c.name === 'p2p')?.value
}

/** Parses a comma or whitespace separated list; throws AddressError naming the first bad entry. */
export function parseAddrList (text: string, parseOne: (entry: string) => Multiaddr): Multiaddr[] {
  return splitList(text).map(parseOne)
}

/**
 * Addresses other nodes can dial, ending in `/p2p/<peerId>`: the announce addresses if any,
 * else the listen addresses with 0.0.0.0 / :: replaced by this machine's interface addresses.
 */
export function dialableAddrs (listen: Multiaddr[], announce: Multiaddr[], peerId: string): string[] {
  const out = new Set<string>()
  const withId = (ma: Multiaddr): string =>
    ma.getComponents().some(c => c.name === 'p2p') ? ma.toString() : `${ma.toString()}/p2p/${peerId}`
  if (announce.length > 0) {
    for (const ma of announce) out.add(withId(ma))
    return [...out]
  }
  const interfaces = Object.values(networkInterfaces()).flatMap(list => list ?? [])
  for (const ma of listen) {
    const [host, tcp] = ma.getComponents()
    if (host === undefined || tcp === undefined) continue
    const wildcard = host.name === 'ip4' ? host.value === '0.0.0.0' : host.value === '::'
    if (!wildcard) {
      out.add(withId(ma))
      continue
    }
    const family = host.name === 'ip4' ? 'IPv4' : 'IPv6'
    // Non-loopback first: those are what other hosts can use.
    const addrs = interfaces.filter(i => i.family === family && !(family === 'IPv6' && i.address.startsWith('fe80')))
      .sort((a, b) => Number(a.internal) - Number(b.internal))
    for (const i of addrs) out.add(`/${host.name}/${i.address}/tcp/${tcp.value ?? ''}/p2p/${peerId}`)
  }
  return [...out]
}
