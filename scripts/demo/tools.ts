/**
 * The system tools the demo drives for real: Debian's docker-registry (the upstream) and skopeo
 * (the client). Missing ones are named with the command that installs them; as root the demo
 * installs them itself with scripts/install-test-deps.sh, given just those packages.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { join } from 'node:path'
import { REGISTRY_BIN } from '../../test/fixtures/registry.js'

export interface Tool {
  /** What the demo runs. */
  command: string
  /** The Debian package that provides it. */
  pkg: string
  /** Why the demo needs it, for the message. */
  role: string
}

export const TOOLS: readonly Tool[] = [
  // The registry fixture runs this exact path, so PATH does not matter for it.
  { command: REGISTRY_BIN, pkg: 'docker-registry', role: 'the upstream registry' },
  { command: 'skopeo', pkg: 'skopeo', role: 'the client that pulls the image' }
]

function isExecutable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The tools of `tools` that can't be run: absolute paths as they are, bare names on `pathVar`. */
export function missingTools (pathVar: string | undefined, tools: readonly Tool[] = TOOLS): Tool[] {
  const dirs = (pathVar ?? '').split(':').filter(d => d !== '')
  return tools.filter(t =>
    t.command.startsWith('/')
      ? !isExecutable(t.command)
      : !dirs.some(d => isExecutable(join(d, t.command)))
  )
}

export function describeMissing (missing: readonly Tool[]): string {
  return missing.map(t => `${t.pkg} (${t.role})`).join(', ')
}

/** What a user without root is told to run. */
export function installHint (missing: readonly Tool[]): string {
  return [
    `demo: missing ${describeMissing(missing)}.`,
    'Install with (Debian/Ubuntu):',
    `  sudo apt-get install -y ${missing.map(t => t.pkg).join(' ')}`,
    'or everything the test suite uses:',
    '  sudo bash scripts/install-test-deps.sh',
    'then run `npm run demo` again.'
  ].join('\n')
}

export type ToolCheck = { ok: true } | { ok: false, code: number, message: string }

export interface EnsureToolsOptions {
  pathVar: string | undefined
  isRoot: boolean
  /** scripts/install-test-deps.sh */
  installScript: string
  tools?: readonly Tool[]
  /** Progress lines (the install itself writes to the terminal directly). */
  print: (line: string) => void
}

/**
 * ok when every tool is there (after installing, as root). Otherwise exit code 2 and the
 * message to print: the command that installs what is missing.
 */
export async function ensureTools (opts: EnsureToolsOptions): Promise<ToolCheck> {
  const tools = opts.tools ?? TOOLS
  const missing = missingTools(opts.pathVar, tools)
  if (missing.length === 0) return { ok: true }
  if (!opts.isRoot) return { ok: false, code: 2, message: installHint(missing) }
  // One list for what is said and what is installed: the script installs exactly the packages
  // it is given (without names it would install everything the test suite uses).
  const packages = missing.map(t => t.pkg)
  opts.print(
    `demo: missing ${describeMissing(missing)}; running as root, so installing ${
      packages.join(' and ')
    } (with what they depend on) from Debian's packages: bash ${opts.installScript} ${packages.join(' ')}`
  )
  const code = await new Promise<number>(resolve => {
    const child = spawn('bash', [opts.installScript, ...packages], { stdio: ['ignore', 'inherit', 'inherit'] })
    child.once('error', err => {
      opts.print(`demo: could not run bash: ${err.message}`)
      resolve(127)
    })
    child.once('exit', (c, signal) => resolve(c ?? (signal !== null ? 128 : 1)))
  })
  const still = missingTools(opts.pathVar, tools)
  if (still.length > 0) {
    return {
      ok: false,
      code: 2,
      message: `demo: ${opts.installScript} exited ${code} and ${describeMissing(still)} is still missing.\n` +
        `Install by hand: apt-get install -y ${still.map(t => t.pkg).join(' ')}`
    }
  }
  opts.print(`demo: installed ${packages.join(' and ')}`)
  return { ok: true }
}
