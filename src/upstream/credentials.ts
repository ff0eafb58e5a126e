import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Credential, Upstream } from './upstream.js'

/** Keys docker login writes for a registry host; Docker Hub is stored under its v1 index URL. */
function configKeys (host: string): string[] {
  const keys = [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`]
  if (/(^|\.)docker\.io$/.test(host)) keys.push('https://index.docker.io/v1/', 'index.docker.io', 'docker.io')
  return keys
}

function defaultDockerConfigPath (): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json')
}

/** A docker `config.json` as read (`auths` and `credsStore`); empty when absent. */
export type DockerConfig = Readonly<{
  auths?: Record<string, { auth?: string, username?: string, password?: string, identitytoken?: string }>
  credsStore?: string
}>

/**
 * Reads CACHE_DOCKER_CONFIG (or `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`). A
 * missing or malformed file is an empty config (warned about when the path was given).
 */
export function loadDockerConfig (dockerConfigPath: string, log: Logger): { config: DockerConfig, path: string } {
  const path = dockerConfigPath !== '' ? dockerConfigPath : defaultDockerConfigPath()
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown
    if (!isObject(parsed)) throw new Error('not a JSON object')
    return { config: parsed as DockerConfig, path }
  } catch (err) {
    if (dockerConfigPath !== '') {
      log.warn({ path, err: (err as Error).message }, 'cannot read CACHE_DOCKER_CONFIG; continuing without its credentials')
    }
    return { config: {}, path }
  }
}

/**
 * The fleet's credential for `upstream`: its CACHE_REGISTRY_AUTH entry, else the docker
 * config's entry for its host; undefined for anonymous access. Secrets are never logged.
 */
export function credentialFor (
  upstream: Upstream,
  explicit: ReadonlyMap<string, Credential>,
  docker: { config: DockerConfig, path: string },
  log: Logger
): Credential | undefined {
  const given = explicit.get(upstream.name)
  if (given !== undefined) return given
  const entry = configKeys(upstream.url.host).map(k => docker.config.auths?.[k]).find(e => e !== undefined)
  if (entry === undefined) return undefined
  if (!isObject(entry)) {
    log.warn({ path: docker.path, upstream: upstream.name }, 'docker config.json: the entry of this upstream is not an object; ignored')
    return undefined
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password }
  }
  if (typeof entry.auth === 'string') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
  }
  return undefined
}

/**
 * Credentials per upstream name: CACHE_REGISTRY_AUTH first, then the docker config.json
 * (`loadDockerConfig`). Secrets are held in memory only and never logged. `alsoKnown` names
 * upstreams made later (the forward proxy's intercepted registries), which CACHE_REGISTRY_AUTH
 * may name too.
 */
export function resolveCredentials (
  upstreams: Upstream[],
  explicit: Map<string, Credential>,
  docker: { config: DockerConfig, path: string },
  log: Logger,
  alsoKnown: (name: string) => boolean = () => false
): Map<string, Credential> {
  const out = new Map<string, Credential>()
  for (const upstream of upstreams) {
    const credential = credentialFor(upstream, explicit, docker, log)
    if (credential !== undefined) out.set(upstream.name, credential)
  }
  for (const name of explicit.keys()) {
    if (!upstreams.some(u => u.name === name) && !alsoKnown(name)) {
      log.warn({ name }, 'CACHE_REGISTRY_AUTH names an upstream that is not in CACHE_REGISTRY_UPSTREAMS (nor intercepted by the proxy)')
    }
  }
  if (docker.config.credsStore !== undefined && out.size === 0) {
    log.warn(
      { credsStore: docker.config.credsStore },
      'docker credential helpers are not supported; put credentials in CACHE_REGISTRY_AUTH'
    )
  }
  return out
}

/** A JSON object (not null, not an array): what config.json and its entries must be. */
function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
