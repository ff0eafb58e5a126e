import { loadConfig, type ConfigSource } from '../config/load.js'
import { createLogger } from '../log/logger.js'
import { RecentWarnings } from '../log/recent-warnings.js'
import { startSidecar } from '../sidecar/sidecar.js'

export async function serveCommand (flags: ConfigSource): Promise<void> {
  const config = loadConfig(flags)
  const warnings = new RecentWarnings()
  const log = createLogger(config.logLevel, warnings)
  const sidecar = await startSidecar(config, log, { warnings })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    sidecar.stop().then(() => process.exit(0), (err: Error) => {
      log.error({ err: err.message }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}
