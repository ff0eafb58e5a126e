import { parseListenAddr } from '../p2p/addresses.js'
import { ConfigError } from './errors.js'
import { OPTIONS, type Config, type OptionKey, type OptionSpec } from './options.js'

export type ConfigSource = Partial<Record<OptionKey, string | undefined>>

function read<T> (spec: OptionSpec<T>, flagValue: string | undefined, env: NodeJS.ProcessEnv): T {
  const [source, raw] = flagValue !== undefined
    ? [spec.flag.split(' ')[0] as string, flagValue]
    : env[spec.env] !== undefined ? [spec.env, env[spec.env] as string] : [spec.env, spec.default ?? '']
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
    const low = flags.evictLowWatermark ?? env.CACHE_EVICT_LOW_WATERMARK ?? OPTIONS.evictLowWatermark.default ?? ''
    throw new ConfigError('CACHE_EVICT_LOW_WATERMARK', low, OPTIONS.evictLowWatermark.expected)
  }
  if (config.listenAddrs.length === 0) {
    config.listenAddrs = [parseListenAddr(`/ip4/0.0.0.0/tcp/${config.p2pPort}`)]
  }
  return config
}
