import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Client } from 'undici'
import type { ClientSeen } from '../http/client-log.js'
import { ok, skip, warn, type Finding } from './finding.js'
import { HTTP_TIMEOUT_MS, MAX_ANSWER_BYTES } from './constants.js'
import { readJsonBounded } from '../io/bounded-body.js'

/** Where diagnose looks for the registry clients of this host. */
export interface ClientLocations {
  /** The Docker engine's API: `unix:///var/run/docker.sock` (DOCKER_HOST) or `http://host:port`. */
  dockerHost: string
  /** containerd's registry hosts directory (`config_path` of its CRI registry config). */
  containerdHosts: string
}

export const DEFAULT_CONTAINERD_HOSTS = '/etc/containerd/certs.d'

export function defaultDockerHost (): string {
  return process.env.DOCKER_HOST !== undefined && process.env.DOCKER_HOST !== '' ? process.env.DOCKER_HOST : 'unix:///var/run/docker.sock'
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]', '0.0.0.0'])

/** Whether a mirror URL names the sidecar at `sidecarUrl` (loopback spellings are one host). */
export function namesSidecar (mirror: string, sidecarUrl: string): boolean {
  let m: URL
  let s: URL
  try {
    m = new URL(mirror)
    s = new URL(sidecarUrl)
  } catch {
    return false
  }
  const port = (u: URL): string => u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80'
  if (port(m) !== port(s)) return false
  return m.hostname === s.hostname || (LOOPBACK.has(m.hostname) && LOOPBACK.has(s.hostname))
}

function reached (seen: ClientSeen | undefined): string {
  if (seen === undefined) return ''
  const ago = Math.round((Date.now() - Date.parse(seen.last_seen)) / 1000)
  return `; its last request reached the sidecar ${ago < 120 ? `${ago} s` : `${Math.round(ago / 60)} min`} ago (${seen.requests} in all)`
}

/**
 * dockerd: its running configuration (`GET /info`: RegistryConfig.Mirrors) names the sidecar,
 * and the sidecar has seen a pull from it (`docker/…` User-Agent). A mirror configured but never
 * reached means dockerd's pulls silently go to Docker Hub.
 */
export async function checkDocker (
  dockerHost: string,
  sidecarUrl: string,
  clients: Record<string, ClientSeen> | undefined
): Promise<Finding> {
  const check = 'client.docker'
  let mirrors: string[]
  try {
    mirrors = await dockerMirrors(dockerHost)
  } catch (err) {
    return skip(check, `no Docker engine answers at ${dockerHost} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const facts = { dockerHost, mirrors, sidecar: sidecarUrl }
  if (!mirrors.some(m => namesSidecar(m, sidecarUrl))) {
    return warn(
      check,
      `dockerd's registry mirrors are ${
        mirrors.length === 0 ? 'none' : mirrors.join(', ')
      }: its pulls of Docker Hub images don't use the sidecar at ${sidecarUrl}`,
      `add "registry-mirrors": ["${sidecarUrl}"] to /etc/docker/daemon.json and restart dockerd (systemctl restart docker)`,
      facts
    )
  }
  const seen = clients?.docker
  if (clients !== undefined && seen === undefined) {
    return warn(
      check,
      `dockerd has the sidecar as its mirror but never reached it: its pulls went straight to Docker Hub (the mirror failed or was down then), or no Docker Hub image was pulled since the sidecar started`,
      `pull a Docker Hub image (docker pull alpine) and run diagnose again; if the sidecar still sees nothing, check that dockerd can reach ${sidecarUrl} (from dockerd's network namespace, not the job's container)`,
      facts
    )
  }
  return ok(check, `dockerd uses the sidecar as its registry mirror${reached(seen)}`, { ...facts, ...(seen !== undefined ? { seen } : {}) })
}

/**
 * containerd: the hosts.toml files under its hosts directory that name the sidecar, and whether
 * the sidecar has seen a pull from it (`containerd/…` User-Agent).
 */
export async function checkContainerd (
  hostsDir: string,
  sidecarUrl: string,
  clients: Record<string, ClientSeen> | undefined
): Promise<Finding> {
  const check = 'client.containerd'
  let registries: string[]
  try {
    registries = (await readdir(hostsDir, { withFileTypes: true })).filter(e => e.isDirectory()).map(e => e.name).sort()
  } catch {
    return skip(check, `no containerd hosts directory at ${hostsDir}`)
  }
  const mirrored: string[] = []
  for (const registry of registries) {
    const text = await readFile(join(hostsDir, registry, 'hosts.toml'), 'utf8').catch(() => '')
    const hosts = [...text.matchAll(/^\s*\[host\."([^"]+)"\]/gm)].map(m => m[1] ?? '')
    if (hosts.some(h => namesSidecar(h, sidecarUrl))) mirrored.push(registry)
  }
  const facts = { hostsDir, registries, mirrored, sidecar: sidecarUrl }
  if (mirrored.length === 0) {
    return warn(
      check,
      `no hosts.toml under ${hostsDir} names the sidecar at ${sidecarUrl}: containerd pulls go straight to the registries`,
      `write ${
        join(hostsDir, 'docker.io', 'hosts.toml')
      } with [host."${sidecarUrl}"] capabilities = ["pull", "resolve"] (examples/containerd/hosts.toml), and set config_path = "${hostsDir}" in containerd's registry config`,
      facts
    )
  }
  const seen = clients?.containerd
  if (clients !== undefined && seen === undefined) {
    return warn(
      check,
      `hosts.toml for ${
        mirrored.join(', ')
      } names the sidecar, but containerd never reached it: its pulls fell back to the registries, or containerd doesn't read ${hostsDir}`,
      `check config_path = "${hostsDir}" in /etc/containerd/config.toml (restart containerd after changing it), then pull again`,
      facts
    )
  }
  return ok(check, `containerd mirrors ${mirrored.join(', ')} through the sidecar${reached(seen)}`, {
    ...facts,
    ...(seen !== undefined ? { seen } : {})
  })
}

/** RegistryConfig.Mirrors of the engine at `dockerHost` (`unix://` socket or `http://`). */
async function dockerMirrors (dockerHost: string): Promise<string[]> {
  const unix = dockerHost.startsWith('unix://') ? dockerHost.slice('unix://'.length) : undefined
  const client = unix !== undefined
    ? new Client('http://localhost', { socketPath: unix, connect: { timeout: HTTP_TIMEOUT_MS } })
    : new Client(dockerHost.replace(/^tcp:\/\//, 'http://'), { connect: { timeout: HTTP_TIMEOUT_MS } })
  try {
    const res = await client.request({ method: 'GET', path: '/info', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`GET /info answered ${res.statusCode}`)
    }
    const info = await readJsonBounded(res.body, MAX_ANSWER_BYTES) as { RegistryConfig?: { Mirrors?: unknown } } | undefined
    const mirrors = info?.RegistryConfig?.Mirrors
    return Array.isArray(mirrors) ? mirrors.filter((m): m is string => typeof m === 'string') : []
  } finally {
    await client.close()
  }
}
