import type { LookupFunction } from 'node:net'
import type { Logger } from 'pino'
import type { Config } from '../config/options.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { Stats } from '../metrics/stats.js'
import { registryApiHost, UpstreamSet } from '../registry/upstreams.js'
import { credentialFor, loadDockerConfig, resolveCredentials } from '../upstream/credentials.js'
import { RegistryClient } from '../upstream/registry-client.js'
import type { loadUpstreamCa } from '../upstream/trust.js'
import type { Credential, Upstream } from '../upstream/upstream.js'

export interface RegistryClients {
  /** The mirror's upstreams (CACHE_REGISTRY_UPSTREAMS), one client each. */
  upstreams: UpstreamSet
  /** Those clients, which the proxy reuses for the registries they name. */
  configured: RegistryClient[]
  /** A client for another registry (the proxy's intercepted ones), resolving names with `lookup`. */
  make: (upstream: Upstream, credential: Credential | undefined, lookup?: LookupFunction) => RegistryClient
  /** The credential of a registry the configuration does not name (CACHE_REGISTRY_AUTH, then the Docker config). */
  credential: (upstream: Upstream) => Credential | undefined
}

/**
 * The registry clients: credentials read once (the mirror's upstreams now, the proxy's
 * intercepted registries as they are first used), rate limits reported to `stats`.
 */
export function registryClients (
  config: Config,
  log: Logger,
  life: Lifecycle,
  stats: Stats,
  upstreamCa: Awaited<ReturnType<typeof loadUpstreamCa>>
): RegistryClients {
  const intercepted = (name: string): boolean => config.proxyAddr !== undefined && config.proxyIntercept.matches(registryApiHost(name))
  const dockerConfig = loadDockerConfig(config.dockerConfig, log)
  const credentials = resolveCredentials(config.registryUpstreams, config.registryAuth, dockerConfig, log, intercepted)
  const make = (upstream: Upstream, credential: Credential | undefined, lookup?: LookupFunction): RegistryClient =>
    new RegistryClient({
      upstream,
      credential,
      timeoutMs: config.upstreamTimeout,
      log,
      onRateLimit: (name, limit) => {
        stats.setRegistryRateLimit(name, limit)
      },
      ca: upstreamCa,
      lookup
    })
  const configured = config.registryUpstreams.map(upstream => make(upstream, credentials.get(upstream.name)))
  const upstreams = new UpstreamSet(configured)
  life.add('registry upstreams', async () => {
    await upstreams.close()
  })
  return { upstreams, configured, make, credential: upstream => credentialFor(upstream, config.registryAuth, dockerConfig, log) }
}
