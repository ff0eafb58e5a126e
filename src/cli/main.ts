#!/usr/bin/env -S node --max-semi-space-size=4
// V8's young generation grows to 32 MiB after start-up and stays there: capped at 8 MiB, an idle
// sidecar holds ~25 MB less, at no measured throughput cost. `npm start` passes the same flag.
import '../p2p/polyfill.js'
import { buildProgram, unknownCommandMessage, unknownVariableWarnings } from './program.js'
import { EXIT_FAILURE, P2pCacheError } from '../errors/p2p-cache-error.js'
import { newSwarmKey } from '../p2p/swarm-key.js'

// Each command's module is loaded when that command runs: `serve` pulls in libp2p, level and the
// AWS SDK, which `healthcheck` (a container's HEALTHCHECK, every few seconds), `stats`, `id` or
// `--version` have no use for.
const program = buildProgram({
  serve: async flags => {
    await (await import('./serve.js')).serveCommand(flags)
  },
  warm: async (images, flags) => {
    process.exitCode = await (await import('./warm.js')).warmCommand(images, flags)
  },
  stats: async opts => {
    await (await import('./stats.js')).statsCommand(opts)
  },
  gc: async flags => {
    await (await import('./gc.js')).gcCommand(flags)
  },
  id: async (flags, opts) => {
    await (await import('./id.js')).idCommand(flags, opts)
  },
  diagnose: async (flags, opts) => {
    await (await import('./diagnose.js')).diagnoseCommand(flags, opts)
  },
  healthcheck: async opts => {
    process.exitCode = await (await import('./healthcheck.js')).healthcheckCommand(opts)
  },
  swarmKey: () => {
    process.stdout.write(`${newSwarmKey()}\n`)
  },
  ca: async (flags, opts) => {
    await (await import('./ca.js')).caCommand(flags, opts)
  }
})

// A mistyped command is not an argument to the default `serve`: say so (usage error, exit 2).
const unknownCommand = unknownCommandMessage(process.argv[2], program.commands.map(c => c.name()))
if (unknownCommand !== undefined) {
  process.stderr.write(`${unknownCommand}\n`)
  process.exit(2)
}
// A CACHE_* variable no option reads is ignored: say which one was probably meant.
for (const warning of unknownVariableWarnings(process.env)) process.stderr.write(`${warning}\n`)

program.parseAsync(process.argv).catch((err: unknown) => {
  // The sidecar's own errors carry their exit code: 2 when the command could not run as
  // configured (the message says what to change), 1 when it failed.
  process.stderr.write(`p2p-cache: ${(err as Error).message ?? String(err)}\n`)
  process.exit(err instanceof P2pCacheError ? err.exitCode : EXIT_FAILURE)
})
