import { z } from 'zod'
import { parseDuration, parseSize } from './units.js'

/**
 * Every setting, once: environment variable, flag, default, and how the text is read.
 * The CLI builds its flags from this table and the README's configuration table lists it.
 */
export interface OptionSpec<T> {
  env: string
  flag: string
  /** Text default, parsed like a user value; undefined = unset. */
  default?: string
  description: string
  /** What a valid value looks like, for the one-line error. */
  expected: string
  schema: z.ZodType<T, string>
}

function option<T> (spec: OptionSpec<T>): OptionSpec<T> {
  return spec
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const size = (min: number): z.ZodType<number, string> => z.string().transform((s, ctx) => {
  const n = parseSize(s)
  if (n === undefined || n < min) { ctx.addIssue({ code: 'custom', message: 'size' }); return z.NEVER }
  return n
})

const duration = z.string().transform((s, ctx) => {
  const n = parseDuration(s)
  if (n === undefined) { ctx.addIssue({ code: 'custom', message: 'duration' }); return z.NEVER }
  return n
})

const boolean = z.string().transform((s, ctx) => {
  const v = s.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(v)) return true
  if (['false', '0', 'no', 'off'].includes(v)) return false
  ctx.addIssue({ code: 'custom', message: 'boolean' })
  return z.NEVER
})

const fraction = z.string().transform((s, ctx) => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(s)
  const n = m === null ? NaN : Number(m[1]) / (m[2] === '%' ? 100 : 1)
  if (!(n > 0 && n <= 1)) { ctx.addIssue({ code: 'custom', message: 'fraction' }); return z.NEVER }
  return n
})

export interface HostPort { host: string, port: number }

const hostPort = z.string().transform((s, ctx): HostPort => {
  // "[::1]:9080", "127.0.0.1:9080", "0.0.0.0:9080", ":9080"
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(s.trim())
  const port = m === null ? NaN : Number(m[3])
  if (m === null || !(port >= 0 && port <= 65535)) { ctx.addIssue({ code: 'custom', message: 'addr' }); return z.NEVER }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2])
  return { host, port }
})

export interface Upstream { name: string, url: URL }

/** `name=url` pairs, comma or whitespace separated; the first is the default upstream. */
const upstreams = z.string().transform((s, ctx): Upstream[] => {
  const out: Upstream[] = []
  for (const item of s.split(/[\s,]+/).filter(Boolean)) {
    const eq = item.indexOf('=')
    const name = item.slice(0, eq).trim()
    let url: URL | undefined
    try { url = new URL(item.slice(eq + 1)) } catch { url = undefined }
    if (eq <= 0 || url === undefined || !['http:', 'https:'].includes(url.protocol) || !/^[A-Za-z0-9.:_-]+$/.test(name) ||
        out.some(u => u.name === name)) {
      ctx.addIssue({ code: 'custom', message: `entry ${item}` })
      return z.NEVER
    }
    url.pathname = url.pathname.replace(/\/+$/, '')
    out.push({ name, url })
  }
  if (out.length === 0) { ctx.addIssue({ code: 'custom', message: 'empty' }); return z.NEVER }
  return out
})

export interface Credential { username: string, password: string }

/** `name=user:secret` pairs for upstreams that need Basic credentials or a token exchange. */
const credentials = z.string().transform((s, ctx): Map<string, Credential> => {
  const out = new Map<string, Credential>()
  for (const item of s.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([^=]+)=([^:]+):(.+)$/.exec(item)
    if (m === null) { ctx.addIssue({ code: 'custom', message: 'credential' }); return z.NEVER }
    out.set(m[1] as string, { username: m[2] as string, password: m[3] as string })
  }
  return out
})

export const OPTIONS = {
  dir: option({
    env: 'CACHE_DIR', flag: '--dir <path>', default: './.p2p-cache',
    description: 'data dir: blobs (by digest), tmp/, the level index',
    expected: 'a directory path', schema: z.string().trim().min(1)
  }),
  maxSize: option({
    env: 'CACHE_MAX_SIZE', flag: '--max-size <size>', default: '20GB',
    description: 'store bound; eviction keeps the store under it (kB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n)',
    expected: 'a size of at least 1MB like 20GB, 512MiB or 1048576', schema: size(1e6)
  }),
  httpAddr: option({
    env: 'CACHE_HTTP_ADDR', flag: '--http-addr <host:port>', default: '127.0.0.1:9080',
    description: 'HTTP listen address (registry mirror, API cache, stats, metrics)',
    expected: 'host:port such as 127.0.0.1:9080, 0.0.0.0:9080 or [::1]:9080', schema: hostPort
  }),
  enableP2p: option({
    env: 'CACHE_ENABLE_P2P', flag: '--enable-p2p <bool>', default: 'true',
    description: 'join the peer-to-peer swarm; false = plain local pull-through cache',
    expected: 'true or false', schema: boolean
  }),
  registryUpstreams: option({
    env: 'CACHE_REGISTRY_UPSTREAMS', flag: '--registry-upstreams <list>', default: 'docker.io=https://registry-1.docker.io',
    description: 'name=url pairs, comma separated; `?ns=<name>` (containerd) selects one, the first is used without ns',
    expected: 'comma separated name=http(s)://host[:port] pairs with unique names, e.g. docker.io=https://registry-1.docker.io',
    schema: upstreams
  }),
  registryAuth: option({
    env: 'CACHE_REGISTRY_AUTH', flag: '--registry-auth <list>', default: '',
    description: 'name=user:secret pairs: credentials for an upstream (Basic, or exchanged for a Bearer token)',
    expected: 'comma separated name=user:secret pairs', schema: credentials
  }),
  dockerConfig: option({
    env: 'CACHE_DOCKER_CONFIG', flag: '--docker-config <path>', default: '',
    description: 'docker config.json to read upstream credentials from (default $DOCKER_CONFIG/config.json, then ~/.docker/config.json)',
    expected: 'a file path', schema: z.string().trim()
  }),
  upstreamTimeout: option({
    env: 'CACHE_UPSTREAM_TIMEOUT', flag: '--upstream-timeout <duration>', default: '30s',
    description: 'time an upstream may take to answer (connect + response headers) before it counts as unreachable',
    expected: 'a duration like 30s, 2m or 1500ms', schema: duration
  }),
  evictMinAge: option({
    env: 'CACHE_EVICT_MIN_AGE', flag: '--evict-min-age <duration>', default: '1h',
    description: 'blobs used more recently than this are not pruned by the watermark policy or `gc`; only the hard size bound overrides it',
    expected: 'a duration like 1h, 30m or 0s', schema: duration
  }),
  evictHighWatermark: option({
    env: 'CACHE_EVICT_HIGH_WATERMARK', flag: '--evict-high-watermark <fraction>', default: '90%',
    description: 'eviction starts when the store is above this fraction of CACHE_MAX_SIZE',
    expected: 'a fraction in (0, 1] such as 0.9 or 90%', schema: fraction
  }),
  evictLowWatermark: option({
    env: 'CACHE_EVICT_LOW_WATERMARK', flag: '--evict-low-watermark <fraction>', default: '80%',
    description: 'eviction stops once the store is below this fraction of CACHE_MAX_SIZE',
    expected: 'a fraction in (0, 1] below the high watermark, such as 0.8 or 80%', schema: fraction
  }),
  adminToken: option({
    env: 'CACHE_ADMIN_TOKEN', flag: '--admin-token <token>', default: '',
    description: 'bearer token that allows admin calls (DELETE /api/cache, gc, pins) from non-loopback clients',
    expected: 'a token string', schema: z.string()
  }),
  logLevel: option({
    env: 'CACHE_LOG_LEVEL', flag: '--log-level <level>', default: 'info',
    description: 'log level (pino): fatal, error, warn, info, debug, trace, silent',
    expected: LOG_LEVELS.join(', '), schema: z.string().trim().toLowerCase().pipe(z.enum(LOG_LEVELS))
  })
}

export type OptionKey = keyof typeof OPTIONS
export type Config = { [K in OptionKey]: (typeof OPTIONS)[K] extends OptionSpec<infer T> ? T : never }
