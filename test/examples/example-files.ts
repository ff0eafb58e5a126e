import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { OPTIONS } from '../../src/config/options.js'
import { run, type RunResult } from '../fixtures/netns.js'

/** Reading the files under examples/ the way their users would: as text, shell, docker commands. */

export const EXAMPLES = resolve(fileURLToPath(import.meta.url), '../../../examples')

export const examplePath = (...parts: string[]): string => join(EXAMPLES, ...parts)

export const readExample = async (...parts: string[]): Promise<string> => await readFile(examplePath(...parts), 'utf8')

/** Every file under examples/, relative to it, sorted. */
export async function exampleFiles (dir = EXAMPLES): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...await exampleFiles(full))
    else out.push(relative(EXAMPLES, full))
  }
  return out.sort()
}

/** The `CACHE_*` environment names of the sidecar's configuration (src/config/options.ts). */
export const OPTION_ENVS: ReadonlySet<string> = new Set(Object.values(OPTIONS).map(o => o.env))

/** Every distinct `CACHE_*` name in a text. */
export function cacheVarNames (text: string): string[] {
  return [...new Set(text.match(/\bCACHE_[A-Z0-9_]+\b/g) ?? [])]
}

/** The contents of the ```sh / ```bash fences of a markdown text (indented fences too). */
export function shellBlocks (markdown: string): string[] {
  const blocks: string[] = []
  const re = /^([ \t]*)```(?:sh|bash|shell)\n([\s\S]*?)^\1```/gm
  for (const m of markdown.matchAll(re)) {
    const indent = m[1] ?? ''
    blocks.push((m[2] ?? '').split('\n').map(l => l.startsWith(indent) ? l.slice(indent.length) : l).join('\n'))
  }
  return blocks
}

/** A script's commands one per entry: backslash continuations joined, blank and comment lines dropped. */
export function commandLines (script: string): string[] {
  return script.replace(/\\\n\s*/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
}

/** The `docker ...` commands of a script (`sudo docker` included). */
export function dockerCommands (script: string): string[] {
  return commandLines(script).map(l => l.replace(/^sudo\s+/, '')).filter(l => /^docker\s/.test(l))
}

/** `bash -n`: the script parses. */
export async function bashSyntax (script: string): Promise<RunResult> {
  // run()'s 30 s: a loaded 2-core CI run once took over 10 s to start bash.
  return await run('bash', ['-n', '-c', script])
}

/**
 * Lets bash expand a command's words (quotes, $VARS from `env`) and returns them: the argv the
 * command would run with.
 */
export async function shellWords (command: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  // run()'s 30 s: a loaded 2-core CI run once took over 10 s to start bash.
  const r = await run('bash', ['-c', `set -- ${command}\nprintf '%s\\0' "$@"`], { env: { PATH: process.env.PATH, ...env } })
  if (r.code !== 0) throw new Error(`cannot expand ${command}: ${r.code === -1 ? 'bash was killed after 30 s' : r.stderr}`)
  return r.stdout.split('\0').slice(0, -1)
}

// `docker run` flags that take no value (the ones the examples could use).
const DOCKER_RUN_BOOLEAN_FLAGS = new Set(['-d', '--detach', '--rm', '-i', '-t', '-it', '--init', '--privileged', '--read-only'])

/** A `docker run` argv (after `docker run`): its flags, the image, and the arguments for the entrypoint. */
export function parseDockerRun (args: string[]): { flags: string[], image: string, command: string[] } {
  const flags: string[] = []
  let i = 0
  while (i < args.length && (args[i] ?? '').startsWith('-')) {
    const flag = args[i] as string
    const takesValue = !flag.includes('=') && !DOCKER_RUN_BOOLEAN_FLAGS.has(flag)
    flags.push(flag)
    if (takesValue) flags.push(args[i + 1] ?? '')
    i += takesValue ? 2 : 1
  }
  const image = args[i]
  if (image === undefined) throw new Error(`no image in docker run ${args.join(' ')}`)
  return { flags, image, command: args.slice(i + 1) }
}

/**
 * Runs a docker command with the real docker client pointed at a daemon socket that does not
 * exist: the client parses and checks its flags (and reads any --env-file) first, so a command it
 * accepts fails only with "Cannot connect to the Docker daemon". Nothing is sent anywhere.
 */
export async function dockerClientCheck (command: string, env: NodeJS.ProcessEnv = {}): Promise<{ accepted: boolean, stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'p2p-cache-docker-client-'))
  try {
    const r = await run('bash', ['-c', command], {
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        DOCKER_CONFIG: join(dir, 'config'),
        DOCKER_HOST: `unix://${join(dir, 'no-daemon.sock')}`,
        ...env
      },
      timeoutMs: 20_000
    })
    return { accepted: r.code !== 0 && /Cannot connect to the Docker daemon/.test(r.stderr), stderr: r.stderr.trim() }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Why the docker client checks can't run here, or undefined when they can. */
export async function dockerClientMissing (): Promise<string | undefined> {
  return (await run('docker', ['--version'])).code === 0 ? undefined : 'no docker client on PATH'
}

/** `docker run --env-file` semantics: NAME=value lines taken verbatim, `#` lines and blank lines skipped. */
export function parseEnvFile (text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const raw of text.split('\n')) {
    const line = raw.trimStart()
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq <= 0) throw new Error(`env file line without NAME=: ${raw}`)
    const name = line.slice(0, eq)
    if (/\s/.test(name)) throw new Error(`env file name with whitespace: ${raw}`)
    env[name] = line.slice(eq + 1)
  }
  return env
}

/** The subcommands `p2p-cache --help` lists. */
export async function cliCommands (cli: string): Promise<Set<string>> {
  const r = await run(process.execPath, [cli, '--help'], { timeoutMs: 20_000 })
  const section = r.stdout.split(/^Commands:$/m)[1] ?? ''
  return new Set([...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map(m => m[1] as string))
}
