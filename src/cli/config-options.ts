import { Option, type Command } from 'commander'
import { OPTIONS, type OptionKey } from '../config/options.js'
import type { ConfigSource } from '../config/load.js'

/** Adds the flags for `keys` (from the one option table) to a command. */
export function addConfigOptions (command: Command, keys: OptionKey[]): Command {
  for (const key of keys) {
    const spec = OPTIONS[key]
    const defaultText = spec.default === undefined || spec.default === '' ? '' : ` (default ${spec.default})`
    command.addOption(new Option(spec.flag, `${spec.description} [env ${spec.env}]${defaultText}`))
  }
  return command
}

export function configFlags (opts: Record<string, unknown>): ConfigSource {
  const out: ConfigSource = {}
  for (const key of Object.keys(OPTIONS) as OptionKey[]) {
    const v = opts[key]
    if (typeof v === 'string') out[key] = v
  }
  return out
}
