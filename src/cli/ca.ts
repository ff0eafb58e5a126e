import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadConfig, type ConfigSource } from '../config/load.js'
import { sidecarUrlFor } from '../http/sidecar-url.js'
import { CA_DIR } from '../proxy/constants.js'
import { proxyUrlFor } from '../proxy/proxy-url.js'
import { SidecarClient } from '../admin/client/client.js'
import { P2pCacheError, EXIT_USAGE } from '../errors/p2p-cache-error.js'

/** How long `ca` waits for the running sidecar's GET /ca.crt. */
const LIVE_CA_TIMEOUT_MS = 1_000
/** Where the steps put the CA on a Debian/Ubuntu host (update-ca-certificates reads *.crt there). */
const SYSTEM_CA_PATH = '/usr/local/share/ca-certificates/p2p-cache.crt'

/** No CA to print: the message says how to get one. */
export class NoProxyCaError extends P2pCacheError {
  constructor (message: string) {
    super(message, { exitCode: EXIT_USAGE })
  }
}

/**
 * `p2p-cache ca`: the proxy's CA certificate (from the running sidecar's GET /ca.crt, else the
 * operator's CACHE_PROXY_CA_CERT, else the one the sidecar made in CACHE_DIR) and the steps
 * that make each client use the proxy and trust it. `pem`: the certificate alone.
 * @throws NoProxyCaError (exit 2) when there is none yet
 */
export async function caCommand (flags: ConfigSource & { url?: string }, opts: { pem?: boolean }): Promise<void> {
  const config = loadConfig(flags)
  const url = flags.url ?? sidecarUrlFor(config.httpAddr)
  const pem = await liveCa(url) ??
    (config.proxyCaCert !== '' ? await readFile(config.proxyCaCert, 'utf8').catch(() => undefined) : undefined) ??
    await readFile(join(config.dir, CA_DIR, 'ca.crt'), 'utf8').catch(() => undefined)
  if (pem === undefined) {
    throw new NoProxyCaError(
      `no proxy CA yet: the sidecar at ${url} does not serve /ca.crt and CACHE_DIR=${config.dir} has none. ` +
        "Start the sidecar with CACHE_PROXY_ADDR=127.0.0.1:3128 (it makes its CA on first start), or give the fleet's own with CACHE_PROXY_CA_CERT and CACHE_PROXY_CA_KEY"
    )
  }
  process.stdout.write(opts.pem === true ? pem : caSteps(pem, proxyUrlFor(config.proxyAddr)))
}

/** The CA the sidecar at `url` serves, or undefined: none answers, its proxy is off, or the answer is no certificate. */
async function liveCa (url: string): Promise<string | undefined> {
  // Any failure falls through to the CA files: the sidecar is only the first place to look.
  return await new SidecarClient(url, { timeoutMs: LIVE_CA_TIMEOUT_MS }).caCertificate().catch(() => undefined)
}

/** The certificate, then per client: where the CA goes and how the proxy is set (README "Proxy"). */
export function caSteps (pem: string, proxy: string): string {
  return `${pem.trimEnd()}

# The proxy's CA (above). Clients of ${proxy} must trust it for the intercepted hosts
# (CACHE_PROXY_INTERCEPT); every other host is a plain tunnel with its own certificate.

# 1. The system store (dockerd, containerd, podman, buildah, Go, curl read it):
p2p-cache ca --pem | sudo tee ${SYSTEM_CA_PATH} >/dev/null && sudo update-ca-certificates
#    RHEL/Fedora: sudo cp ... /etc/pki/ca-trust/source/anchors/p2p-cache.crt && sudo update-ca-trust

# 2. dockerd (systemd drop-in; Docker reads the system store at start):
sudo mkdir -p /etc/systemd/system/docker.service.d
printf '[Service]\\nEnvironment="HTTPS_PROXY=${proxy}" "NO_PROXY=localhost,127.0.0.1"\\n' | sudo tee /etc/systemd/system/docker.service.d/p2p-cache-proxy.conf
sudo systemctl daemon-reload && sudo systemctl restart docker

# 3. containerd: the same drop-in under /etc/systemd/system/containerd.service.d/, then
sudo systemctl daemon-reload && sudo systemctl restart containerd

# 4. podman / buildah (per command or in the job's environment):
export HTTPS_PROXY=${proxy} NO_PROXY=localhost,127.0.0.1

# 5. BuildKit (buildkitd.toml; with the docker-container driver use an address the container
#    reaches, not 127.0.0.1, and pass it: docker buildx create --driver-opt env.HTTPS_PROXY=...):
#    [registry."ghcr.io"]
#      ca = ["${SYSTEM_CA_PATH}"]

# 6. npm (cafile replaces npm's CA list: give it the system bundle, which now holds the CA):
npm config set https-proxy ${proxy} && npm config set cafile /etc/ssl/certs/ca-certificates.crt

# 7. pip (it reads certifi, not the system store):
pip config set global.proxy ${proxy} && pip config set global.cert /etc/ssl/certs/ca-certificates.crt

# 8. Go (reads the system store):
export HTTPS_PROXY=${proxy}
`
}
