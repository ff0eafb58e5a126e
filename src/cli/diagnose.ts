import { loadConfig, type ConfigSource } from '../config/load.js'
import { diagnose } from '../diagnose/run.js'
import { renderText } from '../diagnose/report.js'

export interface DiagnoseFlags {
  json?: boolean
  bootstrap?: string[]
  http?: string
  dockerHost?: string
  containerdHosts?: string
}

/** Prints the report and exits 0 (healthy), 1 (a check failed) or 2 (unusable input). */
export async function diagnoseCommand (config: ConfigSource, flags: DiagnoseFlags): Promise<void> {
  const report = await diagnose(loadConfig(config), {
    ...(flags.bootstrap !== undefined ? { bootstrap: flags.bootstrap } : {}),
    ...(flags.http !== undefined ? { http: flags.http } : {}),
    ...(flags.dockerHost !== undefined ? { dockerHost: flags.dockerHost } : {}),
    ...(flags.containerdHosts !== undefined ? { containerdHosts: flags.containerdHosts } : {})
  })
  process.stdout.write(flags.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderText(report))
  process.exitCode = report.exitCode
}
