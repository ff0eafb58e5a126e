import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Credential, Upstream } from '../config/options.js'

interface DockerConfig {
  auths?: Record<string, { auth?: string, username?: string, password?: string, identitytoken?: string }>
  credsStore?: string
}

/** Keys docker login writes for a registry host; Docker Hub is stored under its v1 index URL. */
function configKeys (host: string): string[] {
  const keys = [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`]
  if (/(^|\.)docker\.io$/.test(host)) keys.push('https://index.docker.io/v1/', 'index.docker.io', 'docker.io')
  return keys
}

function defaultDockerConfigPath (): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json')
}

/**
 * Credentials per upstream name: CACHE_REGISTRY_AUTH first, then a docker config.json.
 * Secrets are held in memory only and never logged.
 */
export function resolveCredentials (
  upstreams: Upstream[], explicit: Map<string, Credential>, dockerConfigPath: string, log: Logger
): Map<string, Credential> {
  const out = new Map<string, Credential>()
  const path = dockerConfigPath !== '' ? dockerConfigPath : defaultDockerConfigPath()
  let config: DockerConfig = {}
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown
    if (!isObject(parsed)) throw new Error('not a JSON object')
    config = parsed as DockerConfig
  } catch (err) {
    if (dockerConfigPath !== '') log.warn({ path, err: (err as Error).message }, 'cannot read CACHE_DOCKER_CONFIG; continuing without its credentials')
  }
  for (const upstream of upstreams) {
    const given = explicit.get(upstream.name)
    if (given !== undefined) { out.set(upstream.name, given); continue }
    const entry = configKeys(upstream.url.host).map(k => config.auths?.[k]).find(e => e !== undefined)
    if (entry === undefined) continue
    if (!isObject(entry)) {
      log.warn({ path, upstream: upstream.name }, 'docker config.json: the entry of this upstream is not an object; ignored')
      continue
    }
    if (typeof entry.username === 'string' && typeof entry.password === 'string') {
      out.set(upstream.name, { username: entry.username, password: entry.password })
    } else if (typeof entry.auth === 'string') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon > 0) out.set(upstream.name, { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) })
    }
  }
  for (const name of explicit.keys()) {
    if (!upstreams.some(u => u.name === name)) log.warn({ name }, 'CACHE_REGISTRY_AUTH names an upstream that is not in CACHE_REGISTRY_UPSTREAMS')
  }
  if (config.credsStore !== undefined && out.size === 0) {
    log.warn({ credsStore: config.credsStore }, 'docker credential helpers are not supported; put credentials in CACHE_REGISTRY_AUTH')
  }
  return out
}

/** A JSON object (not null, not an array): what config.json and its entries must be. */
function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
