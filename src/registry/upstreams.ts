import { OciError } from '../oci/errors.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'

/** The upstream clients by name; the first is the default for requests without `?ns=`. */
export class UpstreamSet {
  private readonly byName: Map<string, RegistryUpstream>

  constructor (private readonly clients: RegistryUpstream[]) {
    this.byName = new Map(clients.map(c => [c.name, c]))
  }

  /** containerd sends `?ns=<registry host>` (URL-encoded); Docker's registry-mirrors sends none. */
  select (ns: string | null): RegistryUpstream {
    if (ns === null || ns === '') {
      const first = this.clients[0]
      if (first === undefined) throw new OciError(400, 'UNSUPPORTED', 'no registry upstream is configured; set CACHE_REGISTRY_UPSTREAMS')
      return first
    }
    const client = this.byName.get(ns)
    if (client === undefined) {
      throw new OciError(
        400,
        'UNSUPPORTED',
        `unknown registry namespace ns=${ns.slice(0, 100)}: add it to CACHE_REGISTRY_UPSTREAMS as ${upstreamEntryFor(ns)} (configured: ${
          [...this.byName.keys()].join(', ')
        })`
      )
    }
    return client
  }

  async close (): Promise<void> {
    await Promise.all(this.clients.map(async c => {
      await c.close()
    }))
  }
}

/** Docker Hub keeps official images under library/; `alpine` means `library/alpine` there. */
export function upstreamRepository (client: RegistryUpstream, name: string): string {
  const isDockerHub = client.name === 'docker.io' || /(^|\.)docker\.io$/.test(client.url.hostname)
  return isDockerHub && !name.includes('/') ? `library/${name}` : name
}

/** Docker Hub's registry API host; its upstream name (and containerd's `ns`) is `docker.io`. */
const DOCKER_HUB_API_HOST = 'registry-1.docker.io'

/** The host serving a registry's API: `docker.io` is served by `registry-1.docker.io`, others by themselves. */
export function registryApiHost (name: string): string {
  return name === 'docker.io' ? DOCKER_HUB_API_HOST : name
}

/** The upstream name of a registry API host: the inverse of registryApiHost. */
export function registryNameOf (host: string): string {
  return host === DOCKER_HUB_API_HOST ? 'docker.io' : host
}

/** The CACHE_REGISTRY_UPSTREAMS entry for a registry host: Docker Hub's API is not on docker.io itself. */
export function upstreamEntryFor (host: string): string {
  const name = host.slice(0, 100)
  return `${name}=https://${registryApiHost(name)}`
}
