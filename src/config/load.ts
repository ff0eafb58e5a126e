import { parseListenAddr } from '../p2p/addresses.js'
import { ConfigError } from '../errors/config-error.js'
import { OPTIONS, type Config, type OptionKey, type OptionSpec } from './options.js'

export type ConfigSource = Partial<Record<OptionKey, string | undefined>>

function read<T> (spec: OptionSpec<T>, flagValue: string | undefined, env: NodeJS.ProcessEnv): T {
  const [source, raw] = flagValue !== undefined
    ? [spec.flag.split(' ')[0] as string, flagValue]
    : env[spec.env] !== undefined
    ? [spec.env, env[spec.env] as string]
    : [spec.env, spec.default ?? '']
  if (spec.noEmpty === true && raw.trim() === '' && (flagValue !== undefined || env[spec.env] !== undefined)) {
    throw new ConfigError(source, raw, spec.expected, undefined, spec.secret)
  }
  const result = spec.schema.safeParse(raw)
  if (!result.success) {
    const detail = result.error.issues.map(i => i.message).find(m => m.startsWith('entry '))
    throw new ConfigError(source, raw, spec.expected, detail, spec.secret)
  }
  return result.data
}

/**
 * Resolves every option: flag, else environment variable, else default.
 * Throws ConfigError naming the first bad value.
 */
export function loadConfig (flags: ConfigSource = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(OPTIONS) as Array<[OptionKey, OptionSpec<unknown>]>) {
    out[key] = read(spec, flags[key], env)
  }
  const config = out as Config
  if (config.evictLowWatermark >= config.evictHighWatermark) {
    const low = flags.evictLowWatermark ?? env.CACHE_EVICT_LOW_WATERMARK
    const high = flags.evictHighWatermark ?? env.CACHE_EVICT_HIGH_WATERMARK
    // Name the value that was given: a high watermark set at or below the default low one is the high one's fault.
    if (low === undefined && high !== undefined) {
      throw new ConfigError(
        'CACHE_EVICT_HIGH_WATERMARK',
        high,
        `a fraction in (0, 1] above CACHE_EVICT_LOW_WATERMARK (${OPTIONS.evictLowWatermark.default ?? ''}), such as 0.9 or 90%`
      )
    }
    throw new ConfigError('CACHE_EVICT_LOW_WATERMARK', low ?? OPTIONS.evictLowWatermark.default ?? '', OPTIONS.evictLowWatermark.expected)
  }
  checkTlsOptions(config, flags, env)
  checkProxyOptions(config, flags, env)
  checkFleetCredentials(config, flags, env)
  if (config.listenAddrs.length === 0) {
    config.listenAddrs = [parseListenAddr(`/ip4/0.0.0.0/tcp/${config.p2pPort}`)]
  }
  return config
}

/**
 * The HTTPS listener needs a certificate and its key, and those are only read for it: a path
 * given without CACHE_HTTPS_ADDR is a forgotten address, not something to ignore silently.
 * (Whether the files can be read and belong together is checked when `serve` starts.)
 */
function checkTlsOptions (config: Config, flags: ConfigSource, env: NodeJS.ProcessEnv): void {
  if (config.httpsAddr !== undefined) {
    if (config.tlsCert === '') throw new ConfigError('CACHE_TLS_CERT', flags.tlsCert ?? env.CACHE_TLS_CERT ?? '', OPTIONS.tlsCert.expected)
    if (config.tlsKey === '') throw new ConfigError('CACHE_TLS_KEY', flags.tlsKey ?? env.CACHE_TLS_KEY ?? '', OPTIONS.tlsKey.expected)
  } else if (config.tlsCert !== '' || config.tlsKey !== '') {
    throw new ConfigError(
      'CACHE_HTTPS_ADDR',
      flags.httpsAddr ?? env.CACHE_HTTPS_ADDR ?? '',
      'host:port such as 127.0.0.1:9443 when CACHE_TLS_CERT or CACHE_TLS_KEY is set (they are only used by the HTTPS listener)'
    )
  }
}

/**
 * The proxy is no open relay: on an address other hosts can reach it needs CACHE_PROXY_ALLOW.
 * Its CA files come both or neither (whether they can be read is checked when `serve` starts).
 */
function checkProxyOptions (config: Config, flags: ConfigSource, env: NodeJS.ProcessEnv): void {
  const addr = config.proxyAddr
  if (addr !== undefined && !isLoopbackHost(addr.host) && config.proxyAllow.empty) {
    throw new ConfigError(
      'CACHE_PROXY_ADDR',
      flags.proxyAddr ?? env.CACHE_PROXY_ADDR ?? '',
      'a loopback address such as 127.0.0.1:3128, or set CACHE_PROXY_ALLOW to the hosts clients may reach (a proxy on a shared address without an allowlist is an open relay)'
    )
  }
  if ((config.proxyCaCert === '') !== (config.proxyCaKey === '')) {
    // Named: the one that is set, which needs the other.
    const [variable, value, other] = config.proxyCaCert !== ''
      ? ['CACHE_PROXY_CA_CERT', flags.proxyCaCert ?? env.CACHE_PROXY_CA_CERT ?? '', 'CACHE_PROXY_CA_KEY']
      : ['CACHE_PROXY_CA_KEY', flags.proxyCaKey ?? env.CACHE_PROXY_CA_KEY ?? '', 'CACHE_PROXY_CA_CERT']
    throw new ConfigError(
      variable,
      value,
      `${other} set too (the CA's certificate and key go together), or neither (the sidecar then makes its own CA in CACHE_DIR)`
    )
  }
}

function isLoopbackHost (host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

/** A fleet credential is for one API upstream, given once: a token or a GitHub App. */
function checkFleetCredentials (config: Config, flags: ConfigSource, env: NodeJS.ProcessEnv): void {
  const names = config.apiUpstreams.map(u => u.name)
  for (const name of config.apiAuth.keys()) {
    if (!names.includes(name)) {
      throw new ConfigError(
        'CACHE_API_AUTH',
        flags.apiAuth ?? env.CACHE_API_AUTH ?? '',
        `names of CACHE_API_UPSTREAMS (${names.join(', ')})`,
        `entry for "${name}": no such API upstream`,
        true
      )
    }
  }
  for (const name of config.apiApp.keys()) {
    const raw = flags.apiApp ?? env.CACHE_API_APP ?? ''
    if (!names.includes(name)) {
      throw new ConfigError(
        'CACHE_API_APP',
        raw,
        `names of CACHE_API_UPSTREAMS (${names.join(', ')})`,
        `entry for "${name}": no such API upstream`
      )
    }
    if (config.apiAuth.has(name)) {
      throw new ConfigError(
        'CACHE_API_APP',
        raw,
        'one fleet credential per API upstream: CACHE_API_AUTH or CACHE_API_APP',
        `entry for "${name}": also in CACHE_API_AUTH`
      )
    }
  }
}
