import { loadConfig } from '../config/load.js'
import { sidecarUrlFor } from '../http/sidecar-url.js'

/** The URL of the sidecar configured on this host (CACHE_HTTP_ADDR), wildcard → loopback. */
export function localSidecarUrl (): string {
  return sidecarUrlFor(loadConfig().httpAddr)
}
