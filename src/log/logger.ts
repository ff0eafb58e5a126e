import { pino, type DestinationStream, type Logger, type LoggerOptions, type Level } from 'pino'
import type { RecentWarnings } from './recent-warnings.js'

const LEVEL_NAMES: Record<number, 'warn' | 'error' | 'fatal'> = { 40: 'warn', 50: 'error', 60: 'fatal' }

/**
 * The sidecar's logger: JSON lines on stdout (or `destination`). With `warnings`, each warning or
 * error logged (pino level ≥ 40, at any configured level that lets it through) is also kept there.
 */
export function createLogger (level: Level | 'silent', warnings?: RecentWarnings, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    name: 'p2p-cache',
    level,
    base: { pid: process.pid },
    ...(warnings === undefined ? {} : {
      hooks: {
        logMethod (args, method, levelValue) {
          const name = LEVEL_NAMES[levelValue]
          if (name !== undefined) {
            const [first, second] = args
            const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : ''
            const bindings = this.bindings() as { component?: unknown }
            const own = typeof first === 'object' && first !== null ? (first as { component?: unknown }).component : undefined
            const component = own ?? bindings.component
            warnings.add({
              time: new Date().toISOString(),
              level: name,
              msg,
              component: typeof component === 'string' ? component : undefined
            })
          }
          method.apply(this, args)
        }
      }
    })
  }
  return destination === undefined ? pino(options) : pino(options, destination)
}
