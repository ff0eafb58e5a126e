import assert from 'node:assert/strict'
import { ConfigError } from '../../../src/errors/config-error.js'
import { loadConfig, type ConfigSource } from '../../../src/config/load.js'

/** The ConfigError loadConfig throws for these flags and this environment (the test fails if it loads). */
export function configError (env: NodeJS.ProcessEnv, flags: ConfigSource = {}): ConfigError {
  try {
    loadConfig(flags, env)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  assert.fail(`loaded without an error: ${JSON.stringify(env)} ${JSON.stringify(flags)}`)
}

/** `text` as a regular expression that matches it literally. */
export function literal (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
