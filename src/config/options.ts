import { z } from 'zod'
import type { Multiaddr } from '@multiformats/multiaddr'
import { AddressError, parseAddrList, parseAnnounceAddr, parseBootstrapAddr, parseListenAddr } from '../p2p/addresses.js'
import { parseSwarmKey } from '../p2p/swarm-key.js'
import { parseDuration, parseSize } from './units.js'
import {
  HEADER_TIMEOUT_MS,
  IDLE_TIMEOUT_MS,
  MAX_CONNECTIONS,
  STALL_TIMEOUT_MS,
  TLS_CERT_EXPECTED,
  TLS_KEY_EXPECTED
} from '../http/constants.js'
import { HostList } from '../proxy/host-list.js'
import { DEFAULT_INTERCEPT, DEFAULT_PATTERNS } from '../proxy/constants.js'
import { UrlPatterns } from '../proxy/url-patterns.js'
import { DEFAULT_LOCAL_NAMESPACE } from '../push/constants.js'
import { parseBucketUrl, type BucketUrl } from '../bucket/bucket-url.js'
import type { HostPort } from '../http/host-port.js'
import { GITHUB_APP_EXPECTED } from '../upstream/constants.js'
import type { Credential, GitHubAppOption, Upstream } from '../upstream/upstream.js'
import { DEFAULT_READ_TIMEOUT_MS } from '../bucket/constants.js'

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
  /** Never echo the value in errors or logs. */
  secret?: boolean
  /** Set but empty is an error (an unset secret in CI must not quietly mean "no key"). */
  noEmpty?: boolean
}

function option<T> (spec: OptionSpec<T>): OptionSpec<T> {
  return spec
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const size = (min: number): z.ZodType<number, string> => z.string().transform((s, ctx) => {
  const n = parseSize(s)
  if (n === undefined || n < min) {
    ctx.addIssue({ code: 'custom', message: 'size' })
    return z.NEVER
  }
  return n
})

/** A rate in bytes per second in the size syntax (`50MB` = 50 MB/s), or `unlimited` (undefined). */
const rate = (min: number): z.ZodType<number | undefined, string> => z.string().transform((s, ctx) => {
  if (['unlimited', 'off', ''].includes(s.trim().toLowerCase())) return undefined
  const n = parseSize(s)
  if (n === undefined || n < min) {
    ctx.addIssue({ code: 'custom', message: 'rate' })
    return z.NEVER
  }
  return n
})

const boundedDuration = (min: number, max: number): z.ZodType<number, string> => z.string().transform((s, ctx) => {
  const n = parseDuration(s)
  if (n === undefined || n < min || n > max) {
    ctx.addIssue({ code: 'custom', message: 'duration' })
    return z.NEVER
  }
  return n
})

/** setTimeout's limit (2^31 - 1 ms, about 24.8 days). */
const duration = boundedDuration(0, 2 ** 31 - 1)

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
  if (!(n > 0 && n <= 1)) {
    ctx.addIssue({ code: 'custom', message: 'fraction' })
    return z.NEVER
  }
  return n
})

/** CACHE_S3_URL: undefined when empty. */
const bucketUrl: z.ZodType<BucketUrl | undefined, string> = z.string().transform((s, ctx) => {
  if (s.trim() === '') return undefined
  const url = parseBucketUrl(s)
  if (url === undefined) {
    ctx.addIssue({ code: 'custom', message: 'bucket URL' })
    return z.NEVER
  }
  return url
})

/** An http(s) origin (CACHE_S3_ENDPOINT): undefined when empty. */
const endpointUrl: z.ZodType<string | undefined, string> = z.string().transform((s, ctx) => {
  if (s.trim() === '') return undefined
  let url: URL | undefined
  try {
    url = new URL(s.trim())
  } catch {}
  if (
    url === undefined || !['http:', 'https:'].includes(url.protocol) || url.username !== '' || url.password !== '' || url.search !== '' ||
    url.hash !== ''
  ) {
    ctx.addIssue({ code: 'custom', message: 'endpoint' })
    return z.NEVER
  }
  return url.href.replace(/\/$/, '')
})

/** "[::1]:9080", "127.0.0.1:9080", "0.0.0.0:9080", ":9080" (all interfaces); undefined = malformed. */
function parseHostPort (s: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(s.trim())
  const port = m === null ? NaN : Number(m[3])
  if (m === null || !(port >= 0 && port <= 65535)) return undefined
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2])
  return { host, port }
}

const hostPort = z.string().transform((s, ctx): HostPort => {
  const addr = parseHostPort(s)
  if (addr === undefined) {
    ctx.addIssue({ code: 'custom', message: 'addr' })
    return z.NEVER
  }
  return addr
})

/** Like hostPort, but empty = unset (a listener that is off unless asked for). */
const optionalHostPort = z.string().transform((s, ctx): HostPort | undefined => {
  if (s.trim() === '') return undefined
  const addr = parseHostPort(s)
  if (addr === undefined) {
    ctx.addIssue({ code: 'custom', message: 'addr' })
    return z.NEVER
  }
  return addr
})

/** `name=url` pairs, comma or whitespace separated; the first is the default upstream. */
const upstreams = z.string().transform((s, ctx): Upstream[] => {
  const out: Upstream[] = []
  for (const item of s.split(/[\s,]+/).filter(Boolean)) {
    const eq = item.indexOf('=')
    const name = item.slice(0, eq).trim()
    let url: URL | undefined
    try {
      url = new URL(item.slice(eq + 1))
    } catch {
      url = undefined
    }
    if (
      eq <= 0 || url === undefined || !['http:', 'https:'].includes(url.protocol) || !/^[A-Za-z0-9.:_-]+$/.test(name) ||
      out.some(u => u.name === name)
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `entry "${item}": ${
          eq <= 0 || url === undefined
            ? 'not name=url'
            : out.some(u => u.name === name)
            ? `${name} is listed twice`
            : 'not an http(s) URL with a plain name'
        }`
      })
      return z.NEVER
    }
    url.pathname = url.pathname.replace(/\/+$/, '')
    out.push({ name, url })
  }
  if (out.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'empty' })
    return z.NEVER
  }
  return out
})

/** Multiaddr lists: a bad entry is named in the error (`entry "<text>": <reason>`). */
const addrList = (parseOne: (entry: string) => Multiaddr): z.ZodType<Multiaddr[], string> => z.string().transform((s, ctx) => {
  try {
    return parseAddrList(s, parseOne)
  } catch (err) {
    if (!(err instanceof AddressError)) throw err
    ctx.addIssue({ code: 'custom', message: `entry "${err.entry}": ${err.reason}` })
    return z.NEVER
  }
})

const port = z.string().trim().regex(/^\d{1,5}$/).transform(Number).pipe(z.number().int().min(0).max(65535))

const dataPort = z.string().trim().toLowerCase().pipe(z.union([z.enum(['auto', 'off']), port]))

const count = (min: number, max: number): z.ZodType<number, string> =>
  z.string().trim().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max))

/** CACHE_LOCAL_REPLICAS: `auto` (undefined: 1 with peers, 0 alone) or a count. */
const replicaCount = z.string().transform((s, ctx): number | undefined => {
  const v = s.trim().toLowerCase()
  if (v === 'auto' || v === '') return undefined
  if (/^\d+$/.test(v) && Number(v) <= 8) return Number(v)
  ctx.addIssue({ code: 'custom', message: 'replica count' })
  return z.NEVER
})

const swarmKey = z.string().transform((s, ctx): Uint8Array | undefined => {
  if (s.trim() === '') return undefined
  const key = parseSwarmKey(s)
  if (key === undefined) {
    ctx.addIssue({ code: 'custom', message: 'swarm key' })
    return z.NEVER
  }
  return key
})

/** Path prefixes the sidecar serves itself: an API upstream can't be named after them. */
export const RESERVED_API_NAMES = ['v2', 'api', 'metrics', 'healthz', 'readyz', 'ca.crt', 'ui', 'twirp', 'actions-cache']

const apiUpstreams = upstreams.transform((list, ctx): Upstream[] => {
  const reserved = list.find(u => RESERVED_API_NAMES.includes(u.name) || !/^[A-Za-z0-9._-]+$/.test(u.name))
  if (reserved !== undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `entry "${reserved.name}=${reserved.url.href}": the name is reserved or not a plain path segment`
    })
    return z.NEVER
  }
  return list
})

/** `name=user:secret` pairs for upstreams that need Basic credentials or a token exchange. */
const credentials = z.string().transform((s, ctx): Map<string, Credential> => {
  const out = new Map<string, Credential>()
  for (const item of s.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([^=]+)=([^:]+):(.+)$/.exec(item)
    if (m === null) {
      ctx.addIssue({ code: 'custom', message: 'credential' })
      return z.NEVER
    }
    out.set(m[1] as string, { username: m[2] as string, password: m[3] as string })
  }
  return out
})

/** A list parsed by `parse`, whose RangeError names the bad entry: that message is the issue's. */
function listOf<T> (parse: (text: string) => T): z.ZodType<T, string> {
  return z.string().transform((s, ctx): T => {
    try {
      return parse(s)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
      return z.NEVER
    }
  })
}

/** A comma separated host list (see HostList). */
const hostList = listOf(s => HostList.parse(s))
/** CACHE_PROXY_PATTERNS (see UrlPatterns). */
const urlPatterns = listOf(s => UrlPatterns.parse(s))

/** `name=token` pairs (CACHE_API_AUTH): one fleet token per API upstream. */
const apiTokens = z.string().transform((s, ctx): Map<string, string> => {
  const out = new Map<string, string>()
  for (const [i, item] of s.split(/[\s,]+/).filter(Boolean).entries()) {
    const m = /^([A-Za-z0-9._-]+)=(\S+)$/.exec(item)
    // The entry itself is a secret: it is named by its position.
    if (m === null || out.has(m[1] as string)) {
      ctx.addIssue({ code: 'custom', message: `entry ${i + 1}: ${m === null ? 'not name=token' : `${m[1] as string} is listed twice`}` })
      return z.NEVER
    }
    out.set(m[1] as string, m[2] as string)
  }
  return out
})

/** `name=<app id>:<installation id>:<private key file>` entries (CACHE_API_APP). */
const githubApps = z.string().transform((s, ctx): Map<string, GitHubAppOption> => {
  const out = new Map<string, GitHubAppOption>()
  for (const item of s.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([A-Za-z0-9._-]+)=(\d+):(\d+):(.+)$/.exec(item)
    if (m === null || out.has(m[1] as string)) {
      ctx.addIssue({
        code: 'custom',
        message: `entry "${item}": ${m === null ? 'not name=<app id>:<installation id>:<private key file>' : 'the name is listed twice'}`
      })
      return z.NEVER
    }
    out.set(m[1] as string, { appId: m[2] as string, installationId: Number(m[3]), privateKeyFile: m[4] as string })
  }
  return out
})

export const OPTIONS = {
  dir: option({
    env: 'CACHE_DIR',
    flag: '--dir <path>',
    default: './.p2p-cache',
    description: 'data dir: blobs (by digest), tmp/, the level index',
    expected: 'a directory path',
    schema: z.string().trim().min(1)
  }),
  maxSize: option({
    env: 'CACHE_MAX_SIZE',
    flag: '--max-size <size>',
    default: '20GB',
    description: 'store bound; eviction keeps the store under it (kB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n)',
    expected: 'a size of at least 1MB like 20GB, 512MiB or 1048576',
    schema: size(1e6)
  }),
  httpAddr: option({
    env: 'CACHE_HTTP_ADDR',
    flag: '--http-addr <host:port>',
    default: '127.0.0.1:9080',
    description: 'HTTP listen address (registry mirror, API cache, stats, metrics)',
    expected: 'host:port such as 127.0.0.1:9080, 0.0.0.0:9080 or [::1]:9080',
    schema: hostPort
  }),
  httpsAddr: option({
    env: 'CACHE_HTTPS_ADDR',
    flag: '--https-addr <host:port>',
    default: '',
    description:
      'HTTPS listen address, serving the same routes as CACHE_HTTP_ADDR with CACHE_TLS_CERT and CACHE_TLS_KEY (for clients that only speak HTTPS, like gh); unset = no HTTPS listener',
    expected: 'host:port such as 127.0.0.1:9443, or empty for no HTTPS listener',
    schema: optionalHostPort
  }),
  tlsCert: option({
    env: 'CACHE_TLS_CERT',
    flag: '--tls-cert <path>',
    default: '',
    description: 'PEM certificate (chain) of the HTTPS listener; required with CACHE_HTTPS_ADDR',
    expected: TLS_CERT_EXPECTED,
    schema: z.string().trim()
  }),
  tlsKey: option({
    env: 'CACHE_TLS_KEY',
    flag: '--tls-key <path>',
    default: '',
    description: 'PEM private key of CACHE_TLS_CERT; required with CACHE_HTTPS_ADDR',
    expected: TLS_KEY_EXPECTED,
    schema: z.string().trim()
  }),
  proxyAddr: option({
    env: 'CACHE_PROXY_ADDR',
    flag: '--proxy-addr <host:port>',
    default: '',
    description:
      "forward proxy listen address (HTTP_PROXY / HTTPS_PROXY for clients): intercepted hosts get TLS terminated with the sidecar's CA, others are tunnelled; unset = no proxy. A non-loopback address needs CACHE_PROXY_ALLOW",
    expected: 'host:port such as 127.0.0.1:3128, or empty for no proxy',
    schema: optionalHostPort
  }),
  proxyIntercept: option({
    env: 'CACHE_PROXY_INTERCEPT',
    flag: '--proxy-intercept <hosts>',
    default: DEFAULT_INTERCEPT,
    description:
      'hosts whose TLS the proxy terminates (the CA is name-constrained to them); `*.example.com` matches subdomains. Replaces the default list',
    expected: 'comma separated host names, `*.example.com` for subdomains',
    schema: hostList
  }),
  proxyAllow: option({
    env: 'CACHE_PROXY_ALLOW',
    flag: '--proxy-allow <hosts>',
    default: '',
    description:
      'when set, the only hosts the proxy connects to (intercepted or not); required with a non-loopback CACHE_PROXY_ADDR (the proxy is no open relay)',
    expected: 'comma separated host names or IP addresses, `*.example.com` for subdomains',
    schema: hostList
  }),
  localNamespace: option({
    env: 'CACHE_LOCAL_NAMESPACE',
    flag: '--local-namespace <name>',
    default: DEFAULT_LOCAL_NAMESPACE,
    description:
      'first path component of the repositories that accept pushes (`/v2/local/app`): the swarm-local namespace; every other name is a read-only mirror',
    expected: 'one lower-case path component such as local (letters, digits, ., _ and -), without a slash',
    schema: z.string().trim().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'one lower-case path component without a slash')
  }),
  localReplicas: option({
    env: 'CACHE_LOCAL_REPLICAS',
    flag: '--local-replicas <n>',
    default: 'auto',
    description:
      'other nodes that must hold a push to the local namespace before it is acknowledged (its blobs, manifest and tag), so it survives the runner it was pushed to; auto = 1 when this node has peers, 0 alone (with a warning)',
    expected: 'auto, or an integer from 0 to 8',
    schema: replicaCount
  }),
  localReplicaTimeout: option({
    env: 'CACHE_LOCAL_REPLICA_TIMEOUT',
    flag: '--local-replica-timeout <duration>',
    default: '30s',
    description: 'how long a manifest PUT to the local namespace waits for its replicas; past it the push fails with 503',
    expected: 'a duration from 1s to 10m, like 30s',
    schema: boundedDuration(1_000, 600_000)
  }),
  localTtl: option({
    env: 'CACHE_LOCAL_TTL',
    flag: '--local-ttl <duration>',
    default: '24h',
    description:
      'content pushed to the local namespace (and the replicas of it) is kept this long against eviction, then is evicted like the rest; while protected content fills CACHE_MAX_SIZE a new push is refused (507)',
    expected: 'a duration like 24h, 90m or 0s',
    schema: duration
  }),
  proxyPatterns: option({
    env: 'CACHE_PROXY_PATTERNS',
    flag: '--proxy-patterns <globs>',
    default: DEFAULT_PATTERNS,
    description:
      'immutable downloads on intercepted hosts, stored by the sha256 of their bytes and shared with peers: `host/path` globs, `*` within a path segment, `**` across segments. Replaces the default list; empty = none',
    expected: 'comma separated host/path globs such as registry.npmjs.org/**/-/*.tgz',
    schema: urlPatterns
  }),
  proxyCaCert: option({
    env: 'CACHE_PROXY_CA_CERT',
    flag: '--proxy-ca-cert <path>',
    default: '',
    description:
      "PEM CA certificate the proxy mints leaves with (a fleet's shared CA); unset = the sidecar makes one in CACHE_DIR/proxy-ca",
    expected: 'the path of a readable PEM CA certificate (with CACHE_PROXY_CA_KEY)',
    schema: z.string().trim()
  }),
  proxyCaKey: option({
    env: 'CACHE_PROXY_CA_KEY',
    flag: '--proxy-ca-key <path>',
    default: '',
    description: 'PEM private key of CACHE_PROXY_CA_CERT (RSA, EC P-256 or P-384)',
    expected: 'the path of a readable PEM private key matching CACHE_PROXY_CA_CERT',
    schema: z.string().trim()
  }),
  s3Url: option({
    env: 'CACHE_S3_URL',
    flag: '--s3-url <url>',
    default: '',
    description:
      'a second tier in S3-compatible object storage: what the fleet fetched (blobs, manifests, tags, pushes, Actions cache entries) is uploaded there in the background and read back when no runner has it (the fleet scaled to zero overnight). Credentials come from the standard AWS chain (AWS_* variables, shared profile, instance or pod role); unset = no second tier',
    expected: 's3://<bucket> or s3://<bucket>/<prefix>, the bucket named as S3 allows (3-63 lower-case letters, digits, dots and hyphens)',
    schema: bucketUrl
  }),
  s3Endpoint: option({
    env: 'CACHE_S3_ENDPOINT',
    flag: '--s3-endpoint <url>',
    default: '',
    description:
      "the endpoint of an S3-compatible store (MinIO, Ceph RGW, Cloudflare R2, GCS interoperability); unset = AWS S3 in the SDK's region (AWS_REGION)",
    expected: 'an http(s)://host[:port] URL',
    schema: endpointUrl
  }),
  s3ForcePathStyle: option({
    env: 'CACHE_S3_FORCE_PATH_STYLE',
    flag: '--s3-force-path-style <bool>',
    default: 'false',
    description: 'address the bucket as <endpoint>/<bucket> instead of <bucket>.<endpoint> (MinIO and Ceph usually need it)',
    expected: 'true or false',
    schema: boolean
  }),
  s3Timeout: option({
    env: 'CACHE_S3_TIMEOUT',
    flag: '--s3-timeout <duration>',
    default: `${DEFAULT_READ_TIMEOUT_MS / 1000}s`,
    description:
      'a bucket read that has not started answering in this long (or stalls this long mid-body) is given up and the upstream asked; the bucket is then skipped for 30s',
    expected: 'a duration from 100ms to 10m, like 5s or 500ms',
    schema: boundedDuration(100, 600_000)
  }),
  upstreamCaFile: option({
    env: 'CACHE_UPSTREAM_CA_FILE',
    flag: '--upstream-ca-file <path>',
    default: '',
    description:
      "extra PEM CA certificates trusted for upstream TLS (registry and API upstreams, and the proxy's), besides the system roots: a private registry's CA",
    expected: 'the path of a readable PEM file of CA certificates',
    schema: z.string().trim()
  }),
  httpHeaderTimeout: option({
    env: 'CACHE_HTTP_HEADER_TIMEOUT',
    flag: '--http-header-timeout <duration>',
    default: `${HEADER_TIMEOUT_MS / 1000}s`,
    description:
      "time a client has to send a request's headers (from connecting, or from the first byte of its next request); slower clients get 408 and are disconnected. Also the TLS handshake timeout of CACHE_HTTPS_ADDR",
    expected: 'a duration from 100ms to 5m, like 10s or 2s',
    schema: boundedDuration(100, 300_000)
  }),
  httpIdleTimeout: option({
    env: 'CACHE_HTTP_IDLE_TIMEOUT',
    flag: '--http-idle-timeout <duration>',
    default: `${IDLE_TIMEOUT_MS / 1000}s`,
    description:
      'a kept-alive connection with no request in progress is closed after this long (keep it above the idle timeout of a load balancer in front)',
    expected: 'a duration from 100ms to 1h, like 65s or 5m',
    schema: boundedDuration(100, 3_600_000)
  }),
  httpStallTimeout: option({
    env: 'CACHE_HTTP_STALL_TIMEOUT',
    flag: '--http-stall-timeout <duration>',
    default: `${STALL_TIMEOUT_MS / 1000}s`,
    description:
      'a client that takes no byte of a response (or sends no byte of a request body) for this long is disconnected, releasing the blob file it was reading; time spent waiting for an upstream or a peer does not count',
    expected: 'a duration from 100ms to 1h, like 60s or 5m',
    schema: boundedDuration(100, 3_600_000)
  }),
  httpMaxConnections: option({
    env: 'CACHE_HTTP_MAX_CONNECTIONS',
    flag: '--http-max-connections <n>',
    default: String(MAX_CONNECTIONS),
    description:
      'client connections open at once on each HTTP(S) listener; further ones are closed as they arrive (lowered, with a warning, when the open-file limit is too low for it)',
    expected: 'an integer from 16 to 1000000',
    schema: count(16, 1_000_000)
  }),
  enableP2p: option({
    env: 'CACHE_ENABLE_P2P',
    flag: '--enable-p2p <bool>',
    default: 'true',
    description: 'join the peer-to-peer swarm; false = plain local pull-through cache',
    expected: 'true or false',
    schema: boolean
  }),
  p2pPort: option({
    env: 'CACHE_P2P_PORT',
    flag: '--p2p-port <port>',
    default: '9000',
    description: 'libp2p TCP port, used when CACHE_LISTEN_ADDRS is not set',
    expected: 'a port number 0-65535',
    schema: port
  }),
  p2pDataPort: option({
    env: 'CACHE_P2P_DATA_PORT',
    flag: '--p2p-data-port <port>',
    default: 'auto',
    description:
      'TCP port of the data channel that carries large blobs between peers (TLS 1.3 with a one-time key from the libp2p exchange, several times faster than the libp2p connection); auto = the P2P port + 1 (9001), or any free port if that one is taken; off = every byte over libp2p',
    expected: 'auto, off, or a port number 0-65535',
    schema: dataPort
  }),
  listenAddrs: option({
    env: 'CACHE_LISTEN_ADDRS',
    flag: '--listen-addrs <multiaddrs>',
    default: '',
    description: 'libp2p listen addresses, comma separated (default /ip4/0.0.0.0/tcp/<CACHE_P2P_PORT>)',
    expected: 'comma separated /ip4/<address>/tcp/<port> or /ip6/<address>/tcp/<port>',
    schema: addrList(parseListenAddr)
  }),
  announceAddrs: option({
    env: 'CACHE_ANNOUNCE_ADDRS',
    flag: '--announce-addrs <multiaddrs>',
    default: '',
    description:
      'addresses other nodes should dial instead of the listen addresses, e.g. /ip4/<host-ip>/tcp/9000 for a container on a bridge network with -p 9000:9000',
    expected: 'comma separated /ip4|ip6|dns4|dns6/<host>/tcp/<port>',
    schema: addrList(parseAnnounceAddr)
  }),
  bootstrapPeers: option({
    env: 'CACHE_BOOTSTRAP_PEERS',
    flag: '--bootstrap-peers <multiaddrs>',
    default: '',
    description:
      'peers to join the swarm through, comma or space separated: /ip4/<ip>/tcp/9000/p2p/<peer id> as `p2p-cache id` prints it, or /dns4/<name>/tcp/9000 without the ID (compose service names: the node that answers is trusted)',
    expected:
      'comma separated /ip4|ip6|dns4|dns6/<host>/tcp/<port>, optionally ending in /p2p/<peer id>, or /dnsaddr/<domain>/p2p/<peer id>',
    schema: addrList(parseBootstrapAddr)
  }),
  mdns: option({
    env: 'CACHE_MDNS',
    flag: '--mdns <bool>',
    default: 'false',
    description: 'discover peers on the local network segment with mDNS (host-networked runners on one LAN)',
    expected: 'true or false',
    schema: boolean
  }),
  swarmKey: option({
    env: 'CACHE_SWARM_KEY',
    flag: '--swarm-key <key>',
    default: '',
    description: 'pre-shared key of a private swarm: only nodes with the same key connect (`p2p-cache swarm-key` makes one)',
    expected: '64 hex characters, or the three-line swarm.key text (unset it for an open swarm)',
    schema: swarmKey,
    secret: true,
    noEmpty: true
  }),
  peerLookupTimeout: option({
    env: 'CACHE_PEER_LOOKUP_TIMEOUT',
    flag: '--peer-lookup-timeout <duration>',
    default: '1s',
    description: 'time to find a peer that has a blob before the request goes upstream',
    expected: 'a duration from 10ms to 10m, like 1s or 500ms',
    schema: boundedDuration(10, 600_000)
  }),
  peerFirstByteTimeout: option({
    env: 'CACHE_PEER_FIRST_BYTE_TIMEOUT',
    flag: '--peer-first-byte-timeout <duration>',
    default: '3s',
    description:
      'a peer that sends nothing for this long (before the first byte or mid-transfer) is dropped for the next provider or the upstream',
    expected: 'a duration from 10ms to 10m, like 3s or 500ms',
    schema: boundedDuration(10, 600_000)
  }),
  maxUploads: option({
    env: 'CACHE_MAX_UPLOADS',
    flag: '--max-uploads <n>',
    default: '16',
    description: 'blobs served to peers at once; further requests are refused and the peer asks another provider',
    expected: 'an integer from 1 to 1024',
    schema: count(1, 1024)
  }),
  p2pMaxUploadRate: option({
    env: 'CACHE_P2P_MAX_UPLOAD_RATE',
    flag: '--p2p-max-upload-rate <size>',
    default: 'unlimited',
    description:
      "bytes per second served to peers in all, over libp2p and the data channel (50MB = 50 MB/s), so a runner's own job keeps its uplink; unlimited = no cap",
    expected: 'unlimited, or a size per second of at least 64KiB, like 50MB or 512KiB',
    schema: rate(64 * 1024)
  }),
  registryUpstreams: option({
    env: 'CACHE_REGISTRY_UPSTREAMS',
    flag: '--registry-upstreams <list>',
    default: 'docker.io=https://registry-1.docker.io',
    description: 'name=url pairs, comma separated; `?ns=<name>` (containerd) selects one, the first is used without ns',
    expected: 'comma separated name=http(s)://host[:port] pairs with unique names, e.g. docker.io=https://registry-1.docker.io',
    schema: upstreams
  }),
  apiUpstreams: option({
    env: 'CACHE_API_UPSTREAMS',
    flag: '--api-upstreams <list>',
    default: 'github=https://api.github.com',
    description: 'name=url pairs: `/<name>/<path>` on the sidecar is `<url>/<path>` upstream, with an HTTP cache in between',
    expected: 'comma separated name=http(s)://host[/path] pairs; names are path segments other than v2, api, metrics, healthz, readyz',
    schema: apiUpstreams
  }),
  apiMaxBody: option({
    env: 'CACHE_API_MAX_BODY',
    flag: '--api-max-body <size>',
    default: '10MB',
    description: 'largest API response body that is cached; larger ones are passed through',
    expected: 'a size like 10MB or 512KiB',
    schema: size(1)
  }),
  apiConcurrency: option({
    env: 'CACHE_API_CONCURRENCY',
    flag: '--api-concurrency <n>',
    default: '32',
    description: 'requests in flight to one API upstream; more wait their turn',
    expected: 'an integer from 1 to 1024',
    schema: count(1, 1024)
  }),
  apiAuth: option({
    env: 'CACHE_API_AUTH',
    flag: '--api-auth <list>',
    default: '',
    description:
      'name=token pairs: the fleet credential of an API upstream; shared responses are revalidated with it (free 304s), see "API cache"',
    expected: 'comma separated name=token pairs, one per API upstream',
    schema: apiTokens,
    secret: true
  }),
  apiApp: option({
    env: 'CACHE_API_APP',
    flag: '--api-app <list>',
    default: '',
    description:
      'name=<app id>:<installation id>:<private key file>: a GitHub App whose installation tokens (minted and refreshed by the sidecar) are the fleet credential',
    expected: GITHUB_APP_EXPECTED,
    schema: githubApps
  }),
  registryAuth: option({
    env: 'CACHE_REGISTRY_AUTH',
    flag: '--registry-auth <list>',
    default: '',
    description: 'name=user:secret pairs: credentials for an upstream (Basic, or exchanged for a Bearer token)',
    expected: 'comma separated name=user:secret pairs',
    schema: credentials,
    secret: true
  }),
  dockerConfig: option({
    env: 'CACHE_DOCKER_CONFIG',
    flag: '--docker-config <path>',
    default: '',
    description: 'docker config.json to read upstream credentials from (default $DOCKER_CONFIG/config.json, then ~/.docker/config.json)',
    expected: 'a file path',
    schema: z.string().trim()
  }),
  upstreamTimeout: option({
    env: 'CACHE_UPSTREAM_TIMEOUT',
    flag: '--upstream-timeout <duration>',
    default: '30s',
    description: 'time an upstream may take to answer (connect + response headers) before it counts as unreachable',
    expected: 'a duration like 30s, 2m or 1500ms',
    schema: duration
  }),
  evictMinAge: option({
    env: 'CACHE_EVICT_MIN_AGE',
    flag: '--evict-min-age <duration>',
    default: '1h',
    description: 'blobs used more recently than this are not pruned by the watermark policy or `gc`; only the hard size bound overrides it',
    expected: 'a duration like 1h, 30m or 0s',
    schema: duration
  }),
  evictHighWatermark: option({
    env: 'CACHE_EVICT_HIGH_WATERMARK',
    flag: '--evict-high-watermark <fraction>',
    default: '90%',
    description: 'eviction starts when the store is above this fraction of CACHE_MAX_SIZE',
    expected: 'a fraction in (0, 1] such as 0.9 or 90%',
    schema: fraction
  }),
  evictLowWatermark: option({
    env: 'CACHE_EVICT_LOW_WATERMARK',
    flag: '--evict-low-watermark <fraction>',
    default: '80%',
    description: 'eviction stops once the store is below this fraction of CACHE_MAX_SIZE',
    expected: 'a fraction in (0, 1] below the high watermark, such as 0.8 or 80%',
    schema: fraction
  }),
  adminToken: option({
    env: 'CACHE_ADMIN_TOKEN',
    flag: '--admin-token <token>',
    default: '',
    description: 'bearer token that allows admin calls (DELETE /api/cache, gc, pins) from non-loopback clients',
    expected: 'a token string',
    schema: z.string(),
    secret: true
  }),
  logLevel: option({
    env: 'CACHE_LOG_LEVEL',
    flag: '--log-level <level>',
    default: 'info',
    description: 'log level (pino): fatal, error, warn, info, debug, trace, silent',
    expected: LOG_LEVELS.join(', '),
    schema: z.string().trim().toLowerCase().pipe(z.enum(LOG_LEVELS))
  })
}

export type OptionKey = keyof typeof OPTIONS
export type Config = { [K in OptionKey]: (typeof OPTIONS)[K] extends OptionSpec<infer T> ? T : never }
