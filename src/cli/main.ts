#!/usr/bin/env node
import '../p2p/polyfill.js'
import { Command } from 'commander'
import { ConfigError } from '../config/errors.js'
import { OPTIONS, type OptionKey } from '../config/options.js'
import { addConfigOptions, configFlags } from './config-options.js'
import { serveCommand } from './serve.js'
import { statsCommand, SidecarUnreachableError } from './stats.js'
import { gcCommand } from './gc.js'
import { idCommand } from './id.js'
import { diagnoseCommand } from './diagnose.js'
import { newSwarmKey } from '../p2p/swarm-key.js'
import { P2pStartError } from '../sidecar.js'
import { IdentityError } from '../p2p/identity.js'

const SERVE_KEYS = Object.keys(OPTIONS) as OptionKey[]
const GC_KEYS: OptionKey[] = ['dir', 'maxSize', 'evictMinAge', 'evictHighWatermark', 'evictLowWatermark', 'httpAddr', 'logLevel']
const ID_KEYS: OptionKey[] = ['dir', 'p2pPort', 'listenAddrs', 'announceAddrs']

const program = new Command('p2p-cache')
  .description('Peer-to-peer cache sidecar for CI runners: registry mirror backed by a verified local store')
  .showHelpAfterError()

addConfigOptions(program.command('serve', { isDefault: true })
  .description('start the HTTP server (registry mirror, stats, metrics) and the peer-to-peer node'), SERVE_KEYS)
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

addConfigOptions(program.command('id')
  .description("print this node's peer ID and dialable addresses (values for other runners' CACHE_BOOTSTRAP_PEERS); creates the identity if missing")
  .option('--json', 'print JSON'), ID_KEYS)
  .action(async (opts: Record<string, unknown>) => { await idCommand(configFlags(opts), { json: opts.json === true }) })

addConfigOptions(program.command('diagnose')
  .description('check why peers can\'t see each other (network mode, ports, announce addresses, each bootstrap peer, the DHT, the running sidecar) and print the fix for each problem; exit 0 healthy, 1 problems, 2 unusable input')
  .option('--json', 'print the report as JSON (schema p2p-cache/diagnose/v1, see docs/diagnose.schema.json)')
  .option('--bootstrap <multiaddr...>', 'bootstrap addresses to check (default: CACHE_BOOTSTRAP_PEERS)')
  .option('--http <url>', 'a running sidecar to check (default: the one on CACHE_HTTP_ADDR, if it answers)'), SERVE_KEYS)
  .action(async (opts: Record<string, unknown>) => {
    await diagnoseCommand(configFlags(opts), {
      json: opts.json === true,
      ...(Array.isArray(opts.bootstrap) ? { bootstrap: opts.bootstrap as string[] } : {}),
      ...(typeof opts.http === 'string' ? { http: opts.http } : {})
    })
  })

program.command('swarm-key')
  .description('print a new pre-shared key for a private swarm (CACHE_SWARM_KEY)')
  .action(() => { process.stdout.write(`${newSwarmKey()}\n`) })

program.parseAsync(process.argv).catch((err: unknown) => {
  // Exit 2: the command could not run as configured; the message says what to change.
  if (err instanceof ConfigError || err instanceof SidecarUnreachableError || err instanceof P2pStartError || err instanceof IdentityError) {
    process.stderr.write(`p2p-cache: ${err.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`p2p-cache: ${(err as Error).message ?? String(err)}\n`)
  process.exit(1)
})
