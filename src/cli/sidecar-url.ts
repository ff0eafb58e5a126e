import { loadConfig } from '../config/load.js'

/** The URL of the sidecar configured on this host (CACHE_HTTP_ADDR), wildcard → loopback. */
export function localSidecarUrl (): string {
  const { host, port } = loadConfig().httpAddr
  const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
  return `http://${target}:${port}`
}
