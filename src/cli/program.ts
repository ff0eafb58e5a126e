import { Command } from 'commander'
import { OPTIONS, type OptionKey } from '../config/options.js'
import type { ConfigSource } from '../config/load.js'
import { closestCommand, unknownVariables } from '../config/unknown-variables.js'
import { VERSION } from '../version/version.js'
import { addConfigOptions, configFlags } from './config-options.js'
import type { DiagnoseFlags } from './diagnose.js'
import type { WarmFlags } from './warm.js'

// The commander wiring of main.ts, apart from the commands themselves: what each command is
// handed can be checked in process, without starting a server.

const SERVE_KEYS = Object.keys(OPTIONS) as OptionKey[]
const GC_KEYS: OptionKey[] = ['dir', 'maxSize', 'evictMinAge', 'evictHighWatermark', 'evictLowWatermark', 'httpAddr', 'logLevel']
const ID_KEYS: OptionKey[] = ['dir', 'p2pPort', 'listenAddrs', 'announceAddrs', 'httpAddr']
const CA_KEYS: OptionKey[] = ['dir', 'httpAddr', 'proxyAddr', 'proxyCaCert', 'proxyCaKey']

/** What each command does once commander has read its arguments (main.ts passes the real commands). */
export interface CliActions {
  serve: (flags: ConfigSource) => Promise<void>
  warm: (images: string[], flags: WarmFlags) => Promise<void>
  stats: (opts: { url?: string, json?: boolean }) => Promise<void>
  gc: (flags: ConfigSource & { url?: string }) => Promise<void>
  id: (flags: ConfigSource, opts: { json: boolean }) => Promise<void>
  diagnose: (flags: ConfigSource, opts: DiagnoseFlags) => Promise<void>
  healthcheck: (opts: { url?: string, ready?: boolean }) => Promise<void>
  swarmKey: () => void
  ca: (flags: ConfigSource & { url?: string }, opts: { pem: boolean }) => Promise<void>
}

/** The "Examples:" block that ends a command's --help: real invocations, one per line. */
function examples (...lines: string[]): string {
  return `\nExamples:\n${lines.map(l => `  $ ${l}`).join('\n')}`
}

/** The `p2p-cache` command line: every command, its flags (from the option table) and its help. */
export function buildProgram (actions: CliActions): Command {
  const program = new Command('p2p-cache')
    .description('Peer-to-peer cache sidecar for CI runners: registry mirror backed by a verified local store')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    .addHelpText(
      'after',
      examples(
        'p2p-cache                                   # serve: mirror on 127.0.0.1:9080, data in ./.p2p-cache',
        'p2p-cache warm alpine:3.20 node:20-slim     # pre-pull images into the running sidecar',
        'p2p-cache stats',
        'p2p-cache diagnose'
      )
    )

  addConfigOptions(
    program.command('serve', { isDefault: true })
      .description('start the HTTP server (registry mirror, stats, metrics) and the peer-to-peer node'),
    SERVE_KEYS
  )
    .addHelpText(
      'after',
      examples(
        'p2p-cache serve',
        'CACHE_REGISTRY_UPSTREAMS=docker.io=https://registry-1.docker.io,ghcr.io=https://ghcr.io p2p-cache serve --max-size 50GB',
        'p2p-cache serve --http-addr 0.0.0.0:9080 --announce-addrs /ip4/10.0.0.5/tcp/9000 --swarm-key "$CACHE_SWARM_KEY"',
        'p2p-cache serve --enable-p2p false --dir /var/cache/p2p-cache   # a plain local pull-through cache'
      )
    )
    .action(async (opts: Record<string, unknown>) => {
      await actions.serve(configFlags(opts))
    })

  program.command('warm')
    .description(
      "pre-pull images into the running sidecar's cache through its registry API (manifests, config and layers); " +
        'exit 0 all warmed, 1 an image failed, 2 unusable input or no sidecar'
    )
    .argument(
      '<image...>',
      'docker-style references: alpine:3.20, ghcr.io/org/img:tag, localhost:5000/x:y, name@sha256:<digest>; ' +
        "one with a registry host is sent with ?ns=<host> (the host must be in the sidecar's CACHE_REGISTRY_UPSTREAMS), one without goes to its first upstream"
    )
    .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)')
    .option('--platform <os/arch[/variant]>', "platform to warm from a multi-platform image (default: this machine's, e.g. linux/amd64)")
    .option('--all-platforms', 'warm every platform of a multi-platform image')
    .option('--concurrency <n>', 'requests to the sidecar at once, 1-64 (default 4)')
    .option('--timeout <duration>', 'time one manifest or blob may take (default 5m)')
    .addHelpText(
      'after',
      examples(
        'p2p-cache warm alpine:3.20 node:20-slim',
        'p2p-cache warm ghcr.io/org/app:1.4 --all-platforms      # ghcr.io must be in CACHE_REGISTRY_UPSTREAMS',
        'p2p-cache warm --platform linux/arm64 --concurrency 8 python:3.12-slim',
        'p2p-cache warm --url http://10.0.0.5:9080 localhost:5000/ci/builder:latest'
      )
    )
    .action(async (images: string[], opts: WarmFlags) => {
      await actions.warm(images, opts)
    })

  program.command('stats')
    .description("print a running sidecar's stats")
    .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)')
    .option('--json', 'print the raw JSON')
    .addHelpText(
      'after',
      examples(
        'p2p-cache stats',
        'p2p-cache stats --url http://10.0.0.5:9080',
        'p2p-cache stats --json | jq .hit_rate'
      )
    )
    .action(async (opts: { url?: string, json?: boolean }) => {
      await actions.stats(opts)
    })

  addConfigOptions(
    program.command('gc')
      .description('apply the prune policy now (through the running sidecar, or on CACHE_DIR if none runs)')
      .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)'),
    GC_KEYS
  )
    .addHelpText(
      'after',
      examples(
        'p2p-cache gc',
        'p2p-cache gc --url http://127.0.0.1:9080',
        'p2p-cache gc --dir /var/cache/p2p-cache --max-size 10GB   # no sidecar running: prunes the data dir itself'
      )
    )
    .action(async (opts: Record<string, unknown>) => {
      await actions.gc({ ...configFlags(opts), ...(typeof opts.url === 'string' ? { url: opts.url } : {}) })
    })

  addConfigOptions(
    program.command('id')
      .description(
        "print this node's peer ID and dialable addresses (values for other runners' CACHE_BOOTSTRAP_PEERS); creates the identity if missing"
      )
      .option('--json', 'print JSON'),
    ID_KEYS
  )
    .addHelpText(
      'after',
      examples(
        'p2p-cache id',
        'p2p-cache id --announce-addrs /ip4/10.0.0.5/tcp/9000 --json',
        'p2p-cache id --dir /var/cache/p2p-cache'
      )
    )
    .action(async (opts: Record<string, unknown>) => {
      await actions.id(configFlags(opts), { json: opts.json === true })
    })

  addConfigOptions(
    program.command('diagnose')
      .description(
        "check why peers can't see each other (network mode, ports, announce addresses, each bootstrap peer, the DHT, the running sidecar) and print the fix for each problem; exit 0 healthy, 1 problems, 2 unusable input"
      )
      .option('--json', 'print the report as JSON (schema p2p-cache/diagnose/v1, see docs/diagnose.schema.json)')
      .option('--bootstrap <multiaddr...>', 'bootstrap addresses to check (default: CACHE_BOOTSTRAP_PEERS)')
      .option('--http <url>', 'a running sidecar to check (default: the one on CACHE_HTTP_ADDR, if it answers)')
      .option(
        '--docker-host <url>',
        'the Docker engine whose registry mirrors to check (default: DOCKER_HOST, else unix:///var/run/docker.sock)'
      )
      .option('--containerd-hosts <dir>', "containerd's registry hosts directory to check (default: /etc/containerd/certs.d)"),
    SERVE_KEYS
  )
    .addHelpText(
      'after',
      examples(
        'p2p-cache diagnose',
        'p2p-cache diagnose --bootstrap /dns4/runner-2/tcp/9000/p2p/12D3KooWKVAwjJhWMPZ27Kwwhe1S37KXeWdXHBnT7JSwgWEtfPuR',
        'p2p-cache diagnose --http http://127.0.0.1:9080 --json > diagnose.json'
      )
    )
    .action(async (opts: Record<string, unknown>) => {
      await actions.diagnose(configFlags(opts), {
        json: opts.json === true,
        ...(Array.isArray(opts.bootstrap) ? { bootstrap: opts.bootstrap as string[] } : {}),
        ...(typeof opts.http === 'string' ? { http: opts.http } : {}),
        ...(typeof opts.dockerHost === 'string' ? { dockerHost: opts.dockerHost } : {}),
        ...(typeof opts.containerdHosts === 'string' ? { containerdHosts: opts.containerdHosts } : {})
      })
    })

  program.command('healthcheck')
    .description("exit 0 when the sidecar on CACHE_HTTP_ADDR answers /healthz, 1 otherwise (the container image's HEALTHCHECK)")
    .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)')
    .option('--ready', 'ask /readyz instead: the store is open and the server listens')
    .addHelpText(
      'after',
      examples(
        'p2p-cache healthcheck',
        'p2p-cache healthcheck --ready --url http://127.0.0.1:9080   # e.g. a Kubernetes exec probe'
      )
    )
    .action(async (opts: { url?: string, ready?: boolean }) => {
      await actions.healthcheck(opts)
    })

  addConfigOptions(
    program.command('ca')
      .description(
        "print the forward proxy's CA certificate (from the running sidecar, else CACHE_DIR or CACHE_PROXY_CA_CERT) and how to make dockerd, containerd, podman, BuildKit, npm, pip and Go use the proxy and trust it; exit 2 when there is no CA yet"
      )
      .option('--url <url>', 'sidecar URL (default from CACHE_HTTP_ADDR)')
      .option('--pem', 'print the certificate alone (PEM)'),
    CA_KEYS
  )
    .addHelpText(
      'after',
      examples(
        'p2p-cache ca',
        'p2p-cache ca --pem | sudo tee /usr/local/share/ca-certificates/p2p-cache.crt && sudo update-ca-certificates',
        'curl -s http://127.0.0.1:9080/ca.crt   # the same certificate, from the sidecar'
      )
    )
    .action(async (opts: Record<string, unknown>) => {
      await actions.ca({ ...configFlags(opts), ...(typeof opts.url === 'string' ? { url: opts.url } : {}) }, { pem: opts.pem === true })
    })

  program.command('swarm-key')
    .description('print a new pre-shared key for a private swarm (CACHE_SWARM_KEY)')
    .addHelpText(
      'after',
      examples(
        'p2p-cache swarm-key',
        'export CACHE_SWARM_KEY="$(p2p-cache swarm-key)"   # then give every runner the same value'
      )
    )
    .action(() => {
      actions.swarmKey()
    })

  return program
}

/**
 * A mistyped command is not an argument to the default `serve`: the one-line usage error for
 * `first` (the first argument), or undefined when it is a command, a flag, `help` or absent.
 */
export function unknownCommandMessage (first: string | undefined, commands: readonly string[]): string | undefined {
  if (first === undefined || first.startsWith('-') || first === 'help' || commands.includes(first)) return undefined
  const near = closestCommand(first, commands)
  return `p2p-cache: unknown command "${first.slice(0, 50)}"${near !== undefined ? ` (did you mean "${near}"?)` : ''}; commands: ${
    commands.join(', ')
  }`
}

/** One warning line per `CACHE_*` variable in `env` that no option reads (it is ignored), with the likely meant one. */
export function unknownVariableWarnings (env: NodeJS.ProcessEnv): string[] {
  return unknownVariables(env, Object.values(OPTIONS).map(o => o.env)).map(({ name, suggestion }) =>
    `p2p-cache: warning: ${name} is not a p2p-cache setting and is ignored${
      suggestion !== undefined ? ` (did you mean ${suggestion}?)` : ''
    }`
  )
}
