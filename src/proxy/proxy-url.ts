import type { HostPort } from '../http/host-port.js'

/** The URL clients put in HTTPS_PROXY for CACHE_PROXY_ADDR: a wildcard listen address is reached on loopback. */
export function proxyUrlFor (addr: HostPort | undefined): string {
  if (addr === undefined) return 'http://127.0.0.1:3128'
  const host = addr.host === '0.0.0.0' || addr.host === '::' ? '127.0.0.1' : addr.host
  return `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`
}
