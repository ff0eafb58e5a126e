/** A bad configuration value: start-up stops with `message` on one line and exit code 2. */
export class ConfigError extends Error {
  constructor (readonly variable: string, readonly value: string, readonly expected: string) {
    super(`invalid ${variable}=${JSON.stringify(value)}: expected ${expected}`)
    this.name = 'ConfigError'
  }
}
