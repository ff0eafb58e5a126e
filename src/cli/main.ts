#!/usr/bin/env node
import { Command } from 'commander'
import { ConfigError } from '../config/errors.js'
import { OPTIONS, type OptionKey } from '../config/options.js'
import { addConfigOptions, configFlags } from './config-options.js'
import { serveCommand } from './serve.js'
import { statsCommand, SidecarUnreachableError } from './stats.js'
import { gcCommand } from './gc.js'

const SERVE_KEYS = Object.keys(OPTIONS) as OptionKey[]
const GC_KEYS: OptionKey[] = ['dir', 'maxSize', 'evictMinAge', 'evictHighWatermark', 'evictLowWatermark', 'httpAddr', 'logLevel']

const program = new Command('p2p-cache')
  .description('Peer-to-peer cache sidecar for CI runners: registry mirror backed by a verified local store')
  .showHelpAfterError()

addConfigOptions(program.command('serve', { isDefault: true })
  .description('start the HTTP server (registry mirror, stats, metrics)'), SERVE_KEYS)
  .action(async (opts: Record<string, unknown>) => { await serveCommand(configFlags(opts)) })

program.command('stats')
  .description("print a running sidecar's stats")
  .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)')
  .option('--json', 'print the raw JSON')
  .action(async (opts: { url?: string, json?: boolean }) => { await statsCommand(opts) })

addConfigOptions(program.command('gc')
  .description('apply the prune policy now (through the running sidecar, or on CACHE_DIR if none runs)')
  .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)'), GC_KEYS)
  .action(async (opts: Record<string, unknown>) => {
    await gcCommand({ ...configFlags(opts), ...(typeof opts.url === 'string' ? { url: opts.url } : {}) })
  })

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`p2p-cache: ${err.message}\n`)
    process.exit(2)
  }
  if (err instanceof SidecarUnreachableError) {
    process.stderr.write(`p2p-cache: ${err.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`p2p-cache: ${(err as Error).message ?? String(err)}\n`)
  process.exit(1)
})
