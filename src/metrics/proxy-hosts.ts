import { RecentMap } from './recent-map.js'

/** What the forward proxy did for one host. */
export interface ProxyHostCounts {
  /** Requests answered on intercepted (TLS-terminated) connections and absolute-form http requests. */
  requests: number
  /** Response bytes of those requests sent to clients. */
  bytes: number
  /** CONNECT tunnels opened (hosts not intercepted). */
  tunnels: number
  /** CONNECTs and requests refused (allowlist, metadata address, own port, unreachable). */
  refused: number
}

/** Hosts tallied at once; the ones not seen longest go first. */
const MAX_HOSTS = 64

/**
 * The forward proxy's work per host (issue 24), for `/api/cache/stats`: which hosts a fleet's
 * jobs reach through it, intercepted or tunnelled. The 64 seen most recently; Prometheus gets
 * the intercept list's entries as labels instead (bounded by the list).
 */
export class ProxyHosts {
  private readonly byHost = new RecentMap<ProxyHostCounts>(MAX_HOSTS)

  add (host: string, field: 'requests' | 'tunnels' | 'refused', bytes = 0): void {
    const counts = this.byHost.touch(host, () => ({ requests: 0, bytes: 0, tunnels: 0, refused: 0 }))
    counts[field]++
    counts.bytes += bytes
  }

  snapshot (): Record<string, ProxyHostCounts> {
    return Object.fromEntries([...this.byHost.entries()].map(([host, c]) => [host, { ...c }]))
  }
}
