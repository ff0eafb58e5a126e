import { isIP } from 'node:net'

/** One DNS label: letters, digits and inner hyphens (RFC 1123). */
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/**
 * A host name as the proxy compares it: lower case, no trailing dot, IPv6 without brackets.
 * Undefined when it is no host name or IP address.
 */
export function normalizeHost (host: string): string | undefined {
  let h = host.trim().toLowerCase()
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1)
  if (isIP(h) !== 0) return h
  if (h.endsWith('.')) h = h.slice(0, -1)
  if (h.length === 0 || h.length > 253) return undefined
  return h.split('.').every(l => LABEL.test(l)) ? h : undefined
}

/**
 * A list of hosts (CACHE_PROXY_INTERCEPT, CACHE_PROXY_ALLOW): `ghcr.io` matches that host,
 * `*.example.com` its subdomains (not example.com itself), an IP address itself.
 */
export class HostList {
  /** The entries as given (normalized), in order. */
  readonly entries: readonly string[]
  private readonly exact = new Set<string>()
  /** Suffixes with their leading dot: `.example.com`. */
  private readonly suffixes: string[] = []

  private constructor (entries: string[]) {
    this.entries = entries
    for (const e of entries) {
      if (e.startsWith('*.')) this.suffixes.push(e.slice(1))
      else this.exact.add(e)
    }
  }

  /**
   * Parses a comma separated list; empty entries are skipped.
   * @throws RangeError naming the first entry that is no host name, `*.` pattern or IP address
   */
  static parse (text: string): HostList {
    const entries: string[] = []
    for (const raw of text.split(',')) {
      const entry = raw.trim()
      if (entry === '') continue
      const wildcard = entry.startsWith('*.')
      const host = normalizeHost(wildcard ? entry.slice(2) : entry)
      if (host === undefined || (wildcard && isIP(host) !== 0)) {
        throw new RangeError(
          `entry ${JSON.stringify(entry.slice(0, 100))}: not a host name (ghcr.io), a subdomain pattern (*.example.com) or an IP address`
        )
      }
      const normal = wildcard ? `*.${host}` : host
      if (!entries.includes(normal)) entries.push(normal)
    }
    return new HostList(entries)
  }

  get empty (): boolean {
    return this.entries.length === 0
  }

  /** Whether `host` (any case, with or without a trailing dot) is on the list. */
  matches (host: string): boolean {
    return this.entryFor(host) !== undefined
  }

  /** The entry that matches `host` (`*.gcr.io` for us.gcr.io); undefined when none does. */
  entryFor (host: string): string | undefined {
    const h = normalizeHost(host)
    if (h === undefined) return undefined
    if (this.exact.has(h)) return h
    const suffix = this.suffixes.find(s => h.endsWith(s) && h.length > s.length)
    return suffix === undefined ? undefined : `*${suffix}`
  }

  /**
   * The DNS name constraints that cover the list (RFC 5280 4.2.1.10): a name permits itself and
   * its subdomains, so `*.example.com` becomes `example.com`. IP addresses are left out (the
   * proxy intercepts names only).
   */
  dnsConstraints (): string[] {
    const names = this.entries.filter(e => isIP(e) === 0).map(e => e.startsWith('*.') ? e.slice(2) : e)
    return [...new Set(names)].sort()
  }

  toString (): string {
    return this.entries.join(',')
  }
}
