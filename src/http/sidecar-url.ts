import type { HostPort } from './host-port.js'

/** The URL to reach a sidecar listening on `addr` from this host: a wildcard address becomes loopback. */
export function sidecarUrlFor ({ host, port }: HostPort): string {
  const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
  return `http://${target}:${port}`
}
