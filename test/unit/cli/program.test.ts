import assert from 'node:assert/strict'
import type { Command } from 'commander'
import { buildProgram, unknownCommandMessage, unknownVariableWarnings, type CliActions } from '../../../src/cli/program.js'
import { loadConfig } from '../../../src/config/load.js'
import { VERSION } from '../../../src/version/version.js'

/** What the commands were handed, in call order. */
type Call = [command: keyof CliActions, ...args: unknown[]]

/** The real command line with actions that only record their arguments; output and exits are captured. */
function cli (): { program: Command, calls: Call[], out: () => string, run: (...args: string[]) => Promise<void> } {
  const calls: Call[] = []
  const record = (name: keyof CliActions) => async (...args: unknown[]): Promise<void> => {
    calls.push([name, ...args])
  }
  const program = buildProgram({
    serve: record('serve'),
    warm: record('warm'),
    stats: record('stats'),
    gc: record('gc'),
    id: record('id'),
    diagnose: record('diagnose'),
    healthcheck: record('healthcheck'),
    swarmKey: () => {
      calls.push(['swarmKey'])
    },
    ca: record('ca')
  })
  let out = ''
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({
      writeOut: text => {
        out += text
      },
      writeErr: text => {
        out += text
      }
    })
  }
  return {
    program,
    calls,
    out: () => out,
    run: async (...args) => {
      await program.parseAsync(args, { from: 'user' })
    }
  }
}

describe('CLI wiring (commander): what each command is handed, without starting anything', () => {
  it('serve is the default command; its flags come from the option table by key', async () => {
    const { calls, run } = cli()
    await run('--max-size', '1GB', '--http-addr', '0.0.0.0:1', '--enable-p2p', 'false')
    assert.deepEqual(calls, [['serve', { maxSize: '1GB', httpAddr: '0.0.0.0:1', enableP2p: 'false' }]])
  })

  it("ca: --pem and --url, and the proxy's CA files by flag", async () => {
    const { calls, run } = cli()
    await run('ca', '--pem', '--url', 'http://127.0.0.1:1', '--proxy-ca-cert', '/x/ca.crt', '--proxy-ca-key', '/x/ca.key')
    assert.deepEqual(calls, [['ca', { proxyCaCert: '/x/ca.crt', proxyCaKey: '/x/ca.key', url: 'http://127.0.0.1:1' }, { pem: true }]])
  })

  it('a flag given to serve beats the environment once the config is loaded', async () => {
    const { calls, run } = cli()
    await run('serve', '--log-level', 'debug')
    const flags = calls[0]?.[1] as Record<string, string>
    assert.equal(loadConfig(flags, { CACHE_LOG_LEVEL: 'warn', CACHE_MAX_SIZE: '2GB' }).logLevel, 'debug')
    assert.equal(loadConfig(flags, { CACHE_LOG_LEVEL: 'warn', CACHE_MAX_SIZE: '2GB' }).maxSize, 2e9, 'no flag: the environment')
  })

  it('serve accepts a flag for every option', () => {
    const { program } = cli()
    const serve = program.commands.find(c => c.name() === 'serve')
    assert.ok(serve !== undefined)
    const flags = serve.options.map(o => o.long)
    assert.ok(flags.includes('--swarm-key') && flags.includes('--api-app') && flags.includes('--evict-low-watermark'))
    assert.equal(flags.length, new Set(flags).size)
  })

  it('gc gets its config flags and --url; id gets --json as a boolean', async () => {
    const { calls, run } = cli()
    await run('gc', '--dir', '/d', '--url', 'http://127.0.0.1:9080')
    await run('id', '--announce-addrs', '/ip4/10.0.0.5/tcp/9000')
    assert.deepEqual(calls, [
      ['gc', { dir: '/d', url: 'http://127.0.0.1:9080' }],
      ['id', { announceAddrs: '/ip4/10.0.0.5/tcp/9000' }, { json: false }]
    ])
  })

  it('gc and id refuse flags of options they do not read', async () => {
    const { calls, run } = cli()
    await assert.rejects(run('gc', '--swarm-key', 'x'), { code: 'commander.unknownOption' })
    await assert.rejects(run('id', '--max-size', '1GB'), { code: 'commander.unknownOption' })
    assert.deepEqual(calls, [])
  })

  it('warm passes its images and flags; it needs at least one image', async () => {
    const { calls, run } = cli()
    await run('warm', 'alpine:3.20', 'node:20', '--all-platforms', '--concurrency', '8')
    assert.deepEqual(calls, [['warm', ['alpine:3.20', 'node:20'], { allPlatforms: true, concurrency: '8' }]])
    await assert.rejects(run('warm'), { code: 'commander.missingArgument' })
  })

  it('diagnose passes only the flags given, several bootstrap addresses as a list', async () => {
    const { calls, run } = cli()
    await run('diagnose', '--json', '--bootstrap', '/dns4/a/tcp/9000', '/dns4/b/tcp/9000', '--swarm-key', 'k')
    assert.deepEqual(calls, [['diagnose', { swarmKey: 'k' }, { json: true, bootstrap: ['/dns4/a/tcp/9000', '/dns4/b/tcp/9000'] }]])
  })

  it('stats, healthcheck and swarm-key get their own flags', async () => {
    const { calls, run } = cli()
    await run('stats', '--json')
    await run('healthcheck', '--ready', '--url', 'http://x:1')
    await run('swarm-key')
    assert.deepEqual(calls, [['stats', { json: true }], ['healthcheck', { ready: true, url: 'http://x:1' }], ['swarmKey']])
  })

  it('prints the version, and help with examples, without running a command', async () => {
    const version = cli()
    await assert.rejects(version.run('--version'), { code: 'commander.version' })
    assert.equal(version.out().trim(), VERSION)
    const help = cli()
    await assert.rejects(help.run('warm', '--help'), { code: 'commander.helpDisplayed' })
    assert.match(help.out(), /Examples:\n {2}\$ p2p-cache warm alpine:3\.20 node:20-slim/)
    assert.deepEqual([...version.calls, ...help.calls], [])
  })

  it('a mistyped command gets one line with the closest command and the list of commands', () => {
    const commands = cli().program.commands.map(c => c.name())
    assert.equal(
      unknownCommandMessage('statz', commands),
      `p2p-cache: unknown command "statz" (did you mean "stats"?); commands: ${commands.join(', ')}`
    )
    assert.match(unknownCommandMessage('frobnicate', commands) ?? '', /^p2p-cache: unknown command "frobnicate"; commands: serve, warm/)
    assert.match(
      unknownCommandMessage('x'.repeat(500), commands) ?? '',
      new RegExp(`^p2p-cache: unknown command "${'x'.repeat(50)}";`),
      'a long word is cut'
    )
  })

  it('a command, a flag (serve by default), help and nothing at all are not mistakes', () => {
    const commands = cli().program.commands.map(c => c.name())
    for (const first of ['serve', 'warm', '--max-size', '-V', 'help', undefined]) {
      assert.equal(unknownCommandMessage(first, commands), undefined, first)
    }
  })

  it('warns once per CACHE_* variable no option reads, with the one probably meant', () => {
    assert.deepEqual(unknownVariableWarnings({ CACHE_MAXSIZE: '1GB', CACHE_DIR: '/d', HOME: '/root' }), [
      'p2p-cache: warning: CACHE_MAXSIZE is not a p2p-cache setting and is ignored (did you mean CACHE_MAX_SIZE?)'
    ])
    assert.deepEqual(unknownVariableWarnings({ CACHE_QWERTYUIOPASDFG: '1' }), [
      'p2p-cache: warning: CACHE_QWERTYUIOPASDFG is not a p2p-cache setting and is ignored'
    ])
  })
})
