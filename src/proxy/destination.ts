import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { BlockList, isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { normalizeHost } from './host-list.js'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/**
 * Addresses the proxy never connects to, whatever the lists say: link-local (169.254.0.0/16,
 * fe80::/10), where clouds serve instance metadata and credentials, and AWS's IPv6 metadata
 * address (fd00:ec2::254). A CI job that can reach them through the proxy can steal the runner's
 * cloud role.
 */
const FORBIDDEN = new BlockList()
FORBIDDEN.addSubnet('169.254.0.0', 16, 'ipv4')
FORBIDDEN.addSubnet('fe80::', 10, 'ipv6')
FORBIDDEN.addAddress('fd00:ec2::254', 'ipv6')

/** A request the proxy refuses: `status` is the HTTP answer (RFC 9110), the message says why and what to do. */
export class ProxyRefusedError extends P2pCacheError {
  constructor (readonly status: 400 | 403 | 502 | 504, message: string) {
    super(message, { httpStatus: 403 })
  }
}

export interface Authority {
  host: string
  port: number
}

/**
 * `host:port` of a CONNECT request (RFC 9110 9.3.6: authority-form), `[v6]:port` for IPv6; the
 * port is required. Undefined when malformed.
 */
export function parseAuthority (authority: string): Authority | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/]+):(\d{1,5})$/.exec(authority)
  if (m === null) return undefined
  const host = normalizeHost(m[1] as string)
  const port = Number(m[2])
  if (host === undefined || port < 1 || port > 65535) return undefined
  return { host, port }
}

/** IPv4-mapped IPv6 (::ffff:169.254.169.254) is checked as the IPv4 address it is. */
function unmapped (ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  return m?.[1] ?? ip
}

/** Why the proxy never connects to `ip`; undefined when it may. */
export function forbiddenReason (ip: string): string | undefined {
  const a = unmapped(ip)
  const family = isIP(a) === 6 ? 'ipv6' : 'ipv4'
  if (FORBIDDEN.check(a, family)) return `${a} is a link-local or cloud metadata address`
  return undefined
}

/** The addresses that mean "this host": loopback, unspecified, and every interface's. */
export function isLocalAddress (ip: string): boolean {
  const a = unmapped(ip)
  if (a === '0.0.0.0' || a === '::' || a === '::1' || a.startsWith('127.')) return true
  return Object.values(networkInterfaces()).some(list => list?.some(i => i.address === a) === true)
}

/**
 * A `lookup` for net.connect and https.request that refuses forbidden addresses and the
 * sidecar's own ports on this host: the check happens on the address really connected to, so a
 * name that resolves (or re-resolves) to the metadata service is refused too.
 */
export function guardedLookup (port: number, ownPorts: () => readonly number[]): typeof dnsLookup {
  const guarded = (
    hostname: string,
    options: unknown,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void
  ): void => {
    dnsLookup(hostname, { ...(options as object), all: true }, (err, addresses) => {
      if (err !== null) {
        callback(err, '')
        return
      }
      const list = addresses
      const refused = list.map(a => refusal(a.address, port, ownPorts)).find(r => r !== undefined)
      if (refused !== undefined) {
        callback(Object.assign(new ProxyRefusedError(403, refused), { code: 'EPROXYREFUSED' }), '')
        return
      }
      if ((options as { all?: boolean } | undefined)?.all === true) callback(null, list)
      else callback(null, list[0]?.address ?? '', list[0]?.family)
    })
  }
  return guarded as unknown as typeof dnsLookup
}

/**
 * The refusal for a target given as an IP address, checked before connecting: Node's
 * net.connect and http.request never call `lookup` for one, so guardedLookup can't see it.
 * Undefined for a name (guardedLookup checks what it resolves to) or an address that may be used.
 */
export function literalRefusal (host: string, port: number, ownPorts: () => readonly number[]): ProxyRefusedError | undefined {
  if (isIP(host) === 0) return undefined
  const reason = refusal(host, port, ownPorts)
  return reason === undefined ? undefined : new ProxyRefusedError(403, reason)
}

/** Why connecting to `ip`:`port` is refused; undefined when it may be. */
export function refusal (ip: string, port: number, ownPorts: () => readonly number[]): string | undefined {
  const forbidden = forbiddenReason(ip)
  if (forbidden !== undefined) return `${forbidden}: the proxy never connects there`
  if (isLocalAddress(ip) && ownPorts().includes(port)) {
    return `${ip}:${port} is this sidecar's own port: the proxy does not loop back into itself`
  }
  return undefined
}
