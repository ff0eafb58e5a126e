import assert from 'node:assert/strict'
import { access, constants, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { OPTIONS } from '../../src/config/options.js'
import { CLI } from '../fixtures/sidecar-process.js'
import { run } from '../fixtures/netns.js'
import {
  bashSyntax,
  cacheVarNames,
  cliCommands,
  commandLines,
  dockerClientCheck,
  dockerClientMissing,
  dockerCommands,
  exampleFiles,
  examplePath,
  OPTION_ENVS,
  parseDockerRun,
  readExample,
  shellBlocks,
  shellWords
} from './example-files.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/** A piece of shell found in the examples, named by where it is. */
interface ShellSource {
  where: string
  script: string
}

const DEFAULT_HTTP_ADDR = OPTIONS.httpAddr.default

/** The Exec* command lines of a systemd unit, continuations joined, without the `-` (ignore failure) prefix. */
function unitExecLines (unit: string): Array<{ key: string, command: string }> {
  return unit.replace(/\\\n\s*/g, ' ').split('\n')
    .map(l => /^(Exec[A-Za-z]+)=[-@+!:]*(.*)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(m => ({ key: m[1] as string, command: m[2] as string }))
}

/** Every piece of shell in examples/: scripts, ```sh blocks, the workflow's run: steps, the unit's Exec lines. */
async function shellSources (): Promise<ShellSource[]> {
  const out: ShellSource[] = []
  for (const file of await exampleFiles()) {
    const text = await readExample(file)
    if (file.endsWith('.sh')) out.push({ where: file, script: text })
    if (file.endsWith('.md')) shellBlocks(text).forEach((script, i) => out.push({ where: `${file} block ${i + 1}`, script }))
    if (file.endsWith('.service')) {
      // The unit names /usr/bin/docker (where docker-ce and Debian's docker.io put it); here the
      // check runs whichever docker client is on PATH.
      for (const { key, command } of unitExecLines(text)) {
        out.push({ where: `${file} ${key}`, script: command.replace(/^\/usr\/bin\/docker\b/, 'docker') })
      }
    }
    if (file.endsWith('.yml')) {
      // Workflows have jobs; prometheus.yml has none (grafana.test.ts checks it).
      const wf = parseYaml(text) as { jobs?: Record<string, { steps: Array<{ name?: string, run?: string }> }> }
      for (const [id, job] of Object.entries(wf.jobs ?? {})) {
        for (const step of job.steps) {
          // ${{ ... }} is replaced by the runner before bash sees the script.
          if (step.run !== undefined) {
            out.push({ where: `${file} ${id}: ${step.name ?? step.run}`, script: step.run.replace(/\$\{\{[^}]*\}\}/g, 'EXPR') })
          }
        }
      }
    }
  }
  return out
}

describe('examples/: static checks', function () {
  this.timeout(60_000)
  let sources: ShellSource[]
  let files: string[]

  before(async () => {
    files = await exampleFiles()
    sources = await shellSources()
  })

  it('examples/README.md links every example', async () => {
    const index = await readExample('README.md')
    const linked = new Set([...index.matchAll(/\]\(([^)]+)\)/g)].map(m => m[1]))
    assert.deepEqual(files.filter(f => f !== 'README.md' && !linked.has(f)), [])
  })

  it('every CACHE_* variable named anywhere in examples/ is a sidecar option', async () => {
    const unknown: string[] = []
    for (const file of files) {
      for (const name of cacheVarNames(await readExample(file))) if (!OPTION_ENVS.has(name)) unknown.push(`${file}: ${name}`)
    }
    assert.deepEqual(unknown, [])
  })

  it('every shell script is executable bash, and every piece of shell passes bash -n', async () => {
    for (const file of files.filter(f => f.endsWith('.sh'))) {
      const text = await readExample(file)
      assert.match(text, /^#!\/usr\/bin\/env bash\n/, `${file} starts with #!/usr/bin/env bash`)
      await access(examplePath(file), constants.X_OK)
      assert.match(text, /^set -euo pipefail$/m, `${file} stops at the first failure`)
    }
    assert.ok(sources.length >= 10, `found only ${sources.length} pieces of shell`)
    for (const { where, script } of sources) {
      const r = await bashSyntax(script)
      assert.equal(r.code, 0, `${where}: ${r.stderr}`)
    }
  })

  it('every docker command is accepted by the real docker client (checked without a daemon)', async function () {
    const why = await dockerClientMissing()
    if (why !== undefined) {
      skipUnlessCi(this, why)
    }
    let checked = 0
    for (const { where, script } of sources) {
      for (const command of dockerCommands(script)) {
        // The fleet's env file is read by the client, so its syntax is docker's to judge.
        const line = command.replace('--env-file /etc/p2p-cache.env', `--env-file ${examplePath('fleet', 'p2p-cache.env')}`)
        const { accepted, stderr } = await dockerClientCheck(line, { P2P_CACHE_URL: `http://${DEFAULT_HTTP_ADDR}`, RUNNER_TEMP: '/tmp' })
        assert.ok(accepted, `${where}: ${command}\n${stderr}`)
        checked++
      }
    }
    assert.ok(checked >= 8, `only ${checked} docker commands found`)
  })

  it('every `docker run ... p2p-cache` keeps /data on the p2p-cache volume and runs a CLI command that exists', async () => {
    const commands = await cliCommands(CLI)
    assert.ok(commands.has('serve') && commands.has('warm'), `CLI commands: ${[...commands].join(' ')}`)
    let images = 0
    for (const { where, script } of sources) {
      for (const command of dockerCommands(script).filter(c => /^docker run\s/.test(c))) {
        const words = await shellWords(command, { P2P_CACHE_URL: 'http://127.0.0.1:9080' })
        const { flags, image, command: args } = parseDockerRun(words.slice(2))
        if (image !== 'p2p-cache') continue
        images++
        const volumes = flags.filter((_f, i) => flags[i - 1] === '-v' || flags[i - 1] === '--volume')
        for (const v of volumes) assert.equal(v, 'p2p-cache:/data', `${where}: ${command}`)
        const envs = flags.filter((_f, i) => flags[i - 1] === '-e' || flags[i - 1] === '--env')
        for (const e of envs.filter(x => x.startsWith('CACHE_DIR='))) assert.equal(e, 'CACHE_DIR=/data', `${where}: ${command}`)
        const sub = args[0] ?? 'serve'
        assert.ok(commands.has(sub), `${where}: p2p-cache ${sub} is not a command (${[...commands].join(', ')})`)
        // The sidecar itself runs on the host network: peers dial the host's address, no -p needed.
        if (sub === 'serve') {
          assert.ok(flags.includes('--network') && flags[flags.indexOf('--network') + 1] === 'host', `${where}: --network host`)
        }
      }
    }
    assert.ok(images >= 6, `only ${images} docker run p2p-cache commands found`)
  })

  it('every `p2p-cache <command>` line in the shell is a CLI command that exists', async () => {
    const commands = await cliCommands(CLI)
    const used = sources.flatMap(({ where, script }) =>
      commandLines(script)
        .map(l => /^(?:npx\s+)?p2p-cache\s+([a-z][a-z-]*)/.exec(l)?.[1])
        .filter((c): c is string => c !== undefined)
        .map(c => ({ where, c }))
    )
    assert.ok(used.length >= 1)
    for (const { where, c } of used) assert.ok(commands.has(c), `${where}: p2p-cache ${c}`)
  })

  it('host-network.sh: --network host, the p2p-cache volume on /data, HTTP on the default loopback address', async () => {
    const script = await readExample('host-network.sh')
    const [serve] = dockerCommands(script)
    assert.ok(serve !== undefined)
    const { flags, image, command } = parseDockerRun((await shellWords(serve)).slice(2))
    assert.equal(image, 'p2p-cache')
    assert.deepEqual(command, [], 'the entrypoint default: serve')
    for (const pair of [
      ['--network', 'host'],
      ['-v', 'p2p-cache:/data'],
      ['-e', 'CACHE_DIR=/data'],
      ['-e', `CACHE_HTTP_ADDR=${DEFAULT_HTTP_ADDR}`]
    ]) {
      assert.ok(flags.some((f, i) => f === pair[0] && flags[i + 1] === pair[1]), `${pair.join(' ')} in ${serve}`)
    }
    assert.ok(script.includes(`http://${DEFAULT_HTTP_ADDR}/readyz`), 'waits for /readyz on the default address')
  })

  it('fleet/p2p-cache.service passes systemd-analyze verify', async function () {
    if ((await run('systemd-analyze', ['--version'])).code !== 0) {
      skipUnlessCi(this, 'systemd-analyze is not installed')
    }
    const docker = (await run('bash', ['-c', 'command -v docker'])).stdout.trim()
    if (docker === '') {
      skipUnlessCi(this, 'no docker client on PATH (systemd-analyze checks that ExecStart is executable)')
    }
    const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-'))
    try {
      const unit = (await readFile(examplePath('fleet', 'p2p-cache.service'), 'utf8')).replaceAll('/usr/bin/docker', docker)
      await writeFile(join(dir, 'p2p-cache.service'), unit)
      // The unit Requires= docker.service, which only a Docker engine package installs; a
      // client binary alone (as on this machine image) has none. A stand-in unit beside it
      // lets verify check the rest (the trailing ':' keeps systemd's own unit paths).
      if ((await run('systemctl', ['cat', 'docker.service'])).code !== 0) {
        await writeFile(
          join(dir, 'docker.service'),
          '[Unit]\nDescription=stand-in for the Docker engine unit\n[Service]\nExecStart=/bin/true\n'
        )
      }
      const r = await run('systemd-analyze', ['verify', join(dir, 'p2p-cache.service')], {
        timeoutMs: 20_000,
        env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` }
      })
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stderr.trim(), '', 'no warnings (unknown keys, bad values)')
      const exec = unitExecLines(unit)
      const start = exec.find(e => e.key === 'ExecStart')
      assert.ok(start?.command.includes('--env-file /etc/p2p-cache.env'), 'the fleet env file')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
