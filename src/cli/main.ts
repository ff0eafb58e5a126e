#!/usr/bin/env -S node --max-semi-space-size=4
// V8's young generation grows to 32 MiB after start-up and stays there: capped at 8 MiB, an idle
// sidecar holds ~25 MB less, at no measured throughput cost. `npm start` passes the same flag.
import '../p2p/polyfill.js'
import { buildProgram, unknownCommandMessage, unknownVariableWarnings } from './program.js'
import { serveCommand } from './serve.js'
import { statsCommand } from './stats.js'
import { gcCommand } from './gc.js'
import { idCommand } from './id.js'
import { diagnoseCommand } from './diagnose.js'
import { warmCommand } from './warm.js'
import { healthcheckCommand } from './healthcheck.js'
import { caCommand } from './ca.js'
import { EXIT_FAILURE, P2pCacheError } from '../errors/p2p-cache-error.js'
import { newSwarmKey } from '../p2p/swarm-key.js'

const program = buildProgram({
  serve: serveCommand,
  warm: async (images, flags) => {
    process.exitCode = await warmCommand(images, flags)
  },
  stats: statsCommand,
  gc: gcCommand,
  id: idCommand,
  diagnose: diagnoseCommand,
  healthcheck: async opts => {
    process.exitCode = await healthcheckCommand(opts)
  },
  swarmKey: () => {
    process.stdout.write(`${newSwarmKey()}\n`)
  },
  ca: caCommand
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
