import type { Credential, Upstream } from '../upstream/upstream.js'
import type { RegistryClient } from '../upstream/registry-client.js'
import type { Authority } from './destination.js'
import { PROXY_UPSTREAMS_MAX } from './constants.js'
import { registryNameOf } from '../registry/upstreams.js'

export interface ProxyUpstreamsInit {
  /** CACHE_REGISTRY_UPSTREAMS' clients: an intercepted host one of them points at is served by it. */
  configured: readonly RegistryClient[]
  /** A client for an intercepted registry that CACHE_REGISTRY_UPSTREAMS does not name. */
  make: (upstream: Upstream, credential: Credential | undefined) => RegistryClient
  /** The fleet's credential for a registry (CACHE_REGISTRY_AUTH, docker config.json), by upstream. */
  credential: (upstream: Upstream) => Credential | undefined
  /** Clients made for intercepted hosts, at most (default PROXY_UPSTREAMS_MAX); past it, requests are relayed uncached. */
  max?: number
}

/**
 * The registry client of each intercepted host (issue 24): the mirror's own when
 * CACHE_REGISTRY_UPSTREAMS points at that host (one upstream name, so the mirror, the proxy and
 * the peers share tag records), else one made on first use with the fleet's credential for it.
 * Docker Hub's API host `registry-1.docker.io` is named `docker.io`, as in the mirror.
 */
export class ProxyUpstreams {
  private readonly made = new Map<string, RegistryClient>()

  constructor (private readonly init: ProxyUpstreamsInit) {}

  /** The client for `target` (an https registry at host:port); undefined past the bound. */
  for (target: Authority): RegistryClient | undefined {
    const origin = target.port === 443 ? `https://${target.host}` : `https://${target.host}:${target.port}`
    const configured = this.init.configured.find(c => c.url.origin === origin)
    if (configured !== undefined) return configured
    const known = this.made.get(origin)
    if (known !== undefined) return known
    if (this.made.size >= (this.init.max ?? PROXY_UPSTREAMS_MAX)) return undefined
    const upstream: Upstream = { name: upstreamName(target), url: new URL(origin) }
    const client = this.init.make(upstream, this.init.credential(upstream))
    this.made.set(origin, client)
    return client
  }

  async close (): Promise<void> {
    await Promise.all([...this.made.values()].map(async c => {
      await c.close()
    }))
    this.made.clear()
  }
}

/** The upstream name of an intercepted registry: its host (with a port other than 443), `docker.io` for Docker Hub's API host. */
export function upstreamName (target: Authority): string {
  const host = registryNameOf(target.host)
  return target.port === 443 ? host : `${host}:${target.port}`
}
