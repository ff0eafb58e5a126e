import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join, resolve } from 'node:path'
import type { Config } from '../config/options.js'
import { CA_DIR } from '../proxy/constants.js'
import { proxyUrlFor } from '../proxy/proxy-url.js'
import { fail, ok, skip, warn, type Finding } from './finding.js'

/** How long the proxy's port may take to accept a connection. */
const CONNECT_TIMEOUT_MS = 1_000

/**
 * The forward proxy (issue 24): its CA present and readable (the operator's files, or the one the
 * sidecar made in CACHE_DIR), the proxy's port answering, and whether clients have used it (the
 * running sidecar's stats). Skipped when CACHE_PROXY_ADDR is unset.
 */
export async function checkProxy (config: Config, stats: Record<string, unknown> | undefined): Promise<Finding[]> {
  if (config.proxyAddr === undefined) return [skip('proxy.ca', 'the forward proxy is off (CACHE_PROXY_ADDR unset)')]
  const url = proxyUrlFor(config.proxyAddr)
  return [await checkCa(config, stats !== undefined), await checkListening(url), checkClients(url, stats)]
}

async function checkCa (config: Config, running: boolean): Promise<Finding> {
  const own = config.proxyCaCert === ''
  const certPath = own ? join(resolve(config.dir), CA_DIR, 'ca.crt') : config.proxyCaCert
  const keyPath = own ? join(resolve(config.dir), CA_DIR, 'ca.key') : config.proxyCaKey
  let cert: X509Certificate
  try {
    cert = new X509Certificate(await readFile(certPath))
    createPrivateKey(await readFile(keyPath))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    if (own && code === 'ENOENT' && !running) {
      return warn(
        'proxy.ca',
        `no proxy CA in ${join(resolve(config.dir), CA_DIR)} yet`,
        'start the sidecar with CACHE_PROXY_ADDR: it makes its CA on first start; then install it on the clients (p2p-cache ca)',
        { certificate: certPath }
      )
    }
    return fail(
      'proxy.ca',
      `the proxy CA ${certPath} (key ${keyPath}) can't be read (${code})`,
      own
        ? `give the sidecar's user access to ${
          join(resolve(config.dir), CA_DIR)
        }, or remove it to have a new CA made (clients must then trust the new one)`
        : "fix CACHE_PROXY_CA_CERT and CACHE_PROXY_CA_KEY: readable PEM files, the key being the certificate's",
      { certificate: certPath, error: code }
    )
  }
  const days = Math.floor((Date.parse(cert.validTo) - Date.now()) / 86_400_000)
  const facts = { certificate: certPath, fingerprint256: cert.fingerprint256, validTo: new Date(cert.validTo).toISOString() }
  if (days < 30) {
    return warn(
      'proxy.ca',
      `the proxy CA ${certPath} ends in ${days} days`,
      own
        ? 'restart the sidecar: it makes a new CA 30 days before the end; install the new one on the clients (p2p-cache ca)'
        : 'renew the fleet CA in CACHE_PROXY_CA_CERT / CACHE_PROXY_CA_KEY',
      facts
    )
  }
  return ok('proxy.ca', `proxy CA ${certPath} readable (SHA-256 ${cert.fingerprint256.slice(0, 23)}…, ${days} days left)`, facts)
}

async function checkListening (url: string): Promise<Finding> {
  const { hostname, port } = new URL(url)
  const host = hostname.replace(/^\[|\]$/g, '')
  const answered = await new Promise<string | undefined>(done => {
    const socket = connect({ host, port: Number(port), timeout: CONNECT_TIMEOUT_MS }, () => {
      socket.destroy()
      done(undefined)
    })
    socket.once('timeout', () => {
      socket.destroy()
      done('timed out')
    })
    socket.once('error', err => {
      done((err as NodeJS.ErrnoException).code ?? err.message)
    })
  })
  if (answered === undefined) return ok('proxy.listen', `the proxy answers at ${url}`, { url })
  return fail(
    'proxy.listen',
    `nothing answers at ${url} (${answered})`,
    'start the sidecar with this CACHE_PROXY_ADDR (`p2p-cache serve`), or point clients and this check at the address it listens on',
    { url, error: answered }
  )
}

function checkClients (url: string, stats: Record<string, unknown> | undefined): Finding {
  if (stats === undefined) return skip('proxy.clients', "no running sidecar answered: can't tell whether clients use the proxy")
  const requests = typeof stats.proxy_requests === 'number' ? stats.proxy_requests : 0
  const tunnels = typeof stats.proxy_tunnels === 'number' ? stats.proxy_tunnels : 0
  const hosts = Object.keys((stats.proxy_by_host ?? {}) as Record<string, unknown>)
  const facts = { requests, tunnels, hosts: hosts.slice(0, 10) }
  if (requests + tunnels === 0) {
    return warn(
      'proxy.clients',
      `no client has used the proxy at ${url} since the sidecar started`,
      `set HTTPS_PROXY=${url} for the clients (dockerd and containerd in a systemd drop-in) and make them trust the CA: \`p2p-cache ca\` prints the steps`,
      facts
    )
  }
  return ok(
    'proxy.clients',
    `clients use the proxy: ${requests} requests answered, ${tunnels} tunnels (${hosts.slice(0, 5).join(', ')})`,
    facts
  )
}
