import { loadConfig } from '../config/load.js'
import { sidecarUrlFor } from '../http/sidecar-url.js'

/** The URL of the sidecar configured on this host (CACHE_HTTP_ADDR in `env`), wildcard → loopback. */
export function localSidecarUrl (env: NodeJS.ProcessEnv = process.env): string {
  return sidecarUrlFor(loadConfig({}, env).httpAddr)
}
