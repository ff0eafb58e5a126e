import { P2pCacheError, EXIT_USAGE } from './p2p-cache-error.js'
/** A bad configuration value: start-up stops with `message` on one line and exit code 2. */
export class ConfigError extends P2pCacheError {
  /**
   * `detail` names the bad part: a list's (`entry "<text>": <reason>`) or a file's
   * (`file "<path>" <reason>`); `secret` values are not echoed.
   */
  constructor (readonly variable: string, readonly value: string, readonly expected: string, detail?: string, secret = false) {
    const shown = secret ? ' (value not shown)' : `=${JSON.stringify(value)}`
    super(
      detail !== undefined
        ? `invalid ${variable} ${detail}; expected ${expected}`
        : `invalid ${variable}${shown}: expected ${expected}`,
      { exitCode: EXIT_USAGE }
    )
  }
}
