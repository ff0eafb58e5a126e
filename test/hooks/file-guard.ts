/**
 * Root hook plugin (loaded by .mocharc.json): every test file is held to two rules.
 * - It leaves nothing running: sockets, servers, ref'd timers and child processes it opened are
 *   closed by its own after() hooks. Mocha runs without `exit: true`, so a leak would otherwise
 *   keep the run alive or hide until another file trips on it. The check compares
 *   `process.getActiveResourcesInfo()` (and this process's children in /proc) after the file
 *   with what was there before it, allowing a short settle time for sockets that are closing.
 * - It finishes within a hard limit (FILE_TIMEOUT_MS; 30 s for unit files): a hang fails fast
 *   with what was running, instead of eating CI's time. Override with TEST_FILE_TIMEOUT_MS.
 *
 * Works in serial and parallel mode: in parallel mode each worker runs one file per root suite.
 * TEST_FILE_TIMES=<path> appends each file's wall time (ms, tab, file) to that file: which files
 * make the suite long.
 */
import { appendFileSync, readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { Server, Socket } from 'node:net'
import { ChildProcess } from 'node:child_process'
import { createHook } from 'node:async_hooks'
import type { Context, Suite } from 'mocha'

const FILE_TIMEOUT_MS = 300_000
const UNIT_FILE_TIMEOUT_MS = 30_000
/** How long resources may take to go after the file's last hook (sockets closing, children reaped). */
const SETTLE_MS = 3_000
/** Resource kinds that keep the process alive or hold a port or a child; others (fs requests, stdio) come and go. */
const WATCHED = new Set([
  'TCPServerWrap',
  'TCPSocketWrap',
  'TCPWrap',
  'Timeout',
  'ProcessWrap',
  'PipeServerWrap',
  'UDPWrap',
  'FSEventWrap',
  'SignalWrap',
  'TLSWrap',
  'HTTPParser',
  'Http2Session',
  'PipeWrap',
  'Immediate'
])

type Counts = Map<string, number>

function resources (): Counts {
  const counts: Counts = new Map()
  for (const kind of process.getActiveResourcesInfo()) {
    if (!WATCHED.has(kind)) continue
    counts.set(kind, (counts.get(kind) ?? 0) + 1)
  }
  return counts
}

/** PIDs of this process's live children (Linux /proc); empty where that can't be read. */
function children (): Set<number> {
  try {
    const text = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8')
    const pids = text.split(/\s+/).filter(Boolean).map(Number)
    // A zombie is reaped on the next turn; only running children count.
    return new Set(pids.filter(pid => !/\) Z /.test(stat(pid))))
  } catch {
    return new Set()
  }
}

function stat (pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return ') Z '
  }
}

function commandOf (pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 200)
  } catch {
    return '(gone)'
  }
}

function leaks (before: Counts, beforeChildren: Set<number>): string[] {
  const found: string[] = []
  for (const [kind, n] of resources()) {
    const extra = n - (before.get(kind) ?? 0)
    if (extra > 0) found.push(`${extra} ${kind}`)
  }
  for (const pid of children()) {
    if (!beforeChildren.has(pid)) found.push(`child process ${pid} (${commandOf(pid)})`)
  }
  return found
}

function isUnitFile (file: string): boolean {
  return /(^|\/)test\/unit\//.test(file)
}

function limitFor (file: string): number {
  const env = process.env.TEST_FILE_TIMEOUT_MS
  if (env !== undefined && /^\d+$/.test(env)) return Number(env)
  return isUnitFile(file) ? UNIT_FILE_TIMEOUT_MS : FILE_TIMEOUT_MS
}

/** What the open handles are, so a leak's message points at the culprit (ports, commands, timer callbacks). */
function describeHandles (): string {
  const handles = (process as unknown as { _getActiveHandles: () => unknown[] })._getActiveHandles()
  const out: string[] = []
  for (const h of handles) {
    if (h instanceof Server) {
      const a = h.address()
      out.push(`server ${typeof a === 'object' && a !== null ? a.port : String(a)}`)
    } else if (h instanceof Socket) {
      if (h.remotePort !== undefined) out.push(`socket ${h.localPort ?? '?'}->${h.remoteAddress ?? '?'}:${h.remotePort}`)
    } else if (h instanceof ChildProcess) {
      out.push(`child ${h.pid ?? '?'} ${h.spawnargs.join(' ').slice(0, 120)}`)
    } else if (h !== null && typeof h === 'object' && '_onTimeout' in h) {
      const fn = (h as { _onTimeout: unknown })._onTimeout
      out.push(`timer ${typeof fn === 'function' ? fn.toString().replace(/\s+/g, ' ').slice(0, 80) : '?'}`)
    }
  }
  if (out.length === 0) {
    out.push(
      process.env.TEST_GUARD_TRACE === undefined ? 'nothing identifiable; TEST_GUARD_TRACE=1 shows where timers were created' : 'no handle'
    )
  }
  return out.join('; ')
}

async function nextTurn (): Promise<void> {
  await new Promise<void>(resolve => {
    setImmediate(resolve)
  })
}

/**
 * TEST_GUARD_TRACE=1: where each live ref'd timer was created, for a leak's message (async_hooks
 * slows everything down, so only on demand).
 */
const timers = new Map<number, { timer: NodeJS.Timeout, stack: string }>()
if (process.env.TEST_GUARD_TRACE !== undefined) {
  createHook({
    init (id, type, _trigger, resource) {
      if (type === 'Timeout') {
        timers.set(id, {
          timer: resource as NodeJS.Timeout,
          stack: (new Error().stack ?? '').split('\n').slice(1).filter(l => !/\(node:|file-guard/.test(l)).slice(0, 5).map(l => l.trim())
            .join(' <- ')
        })
      }
    },
    destroy (id) {
      timers.delete(id)
    }
  }).enable()
}

function timerOrigins (): string {
  const live = [...timers.values()].filter(t => t.timer.hasRef() && !(t.timer as unknown as { _destroyed: boolean })._destroyed)
  return live.length === 0 ? '' : `; timers created at: ${live.map(t => t.stack.replace(/\s+/g, ' ')).join(' || ')}`
}

/** Set when a file left something running: the run then ends even if that keeps the loop alive. */
let leaked = false

/** The test or hook running now, for the hard limit's message. */
let current = '(between tests)'

function guard (file: string, first: Suite, last: Suite): void {
  const name = relative(process.cwd(), file)
  let before: Counts = new Map()
  let beforeChildren = new Set<number>()
  let timer: NodeJS.Timeout | undefined
  let startedAt = 0
  first.beforeAll(`file guard: start ${name}`, async function () {
    startedAt = Date.now()
    // Mocha arms the hook's own timer once the hook returned its promise: both snapshots are taken
    // a turn later, so each counts that one timer.
    await nextTurn()
    before = resources()
    beforeChildren = children()
    const limit = limitFor(file)
    timer = setTimeout(() => {
      process.stderr.write(
        `\n${name} exceeded its hard limit of ${limit / 1000} s while running "${current}"; ` +
          `open: ${JSON.stringify(Object.fromEntries(resources()))}. Stopping the run: a hung file fails it instead of eating CI's time.\n`
      )
      process.exit(1)
    }, limit)
    timer.unref()
  })
  // Runs first among the file's before() hooks: the snapshot must not see what they open.
  const hooks = (first as unknown as { _beforeAll: unknown[] })._beforeAll
  hooks.unshift(hooks.pop())
  last.afterAll(`file guard: ${name} left nothing running`, async function () {
    clearTimeout(timer)
    const times = process.env.TEST_FILE_TIMES
    if (times !== undefined && times !== '') appendFileSync(times, `${Date.now() - startedAt}\t${name}\n`)
    await nextTurn()
    const deadline = Date.now() + SETTLE_MS
    let found = leaks(before, beforeChildren)
    while (found.length > 0 && Date.now() < deadline) {
      await new Promise<void>(resolve => {
        setTimeout(resolve, 50).unref()
      })
      found = leaks(before, beforeChildren)
    }
    if (found.length > 0) {
      leaked = true
      throw new Error(
        `${name} left ${
          found.join(', ')
        } behind (open now: ${describeHandles()}${timerOrigins()}): close every server, socket, ref'd timer and child process the file opens in its after()/afterEach() hooks`
      )
    }
  })
}

export const mochaHooks = {
  beforeAll (this: Context) {
    const root = this.test?.parent
    if (root === undefined) return
    const byFile = new Map<string, Suite[]>()
    for (const suite of root.suites) {
      if (suite.file === undefined) continue
      const list = byFile.get(suite.file) ?? []
      list.push(suite)
      byFile.set(suite.file, list)
    }
    for (const [file, suites] of byFile) {
      const first = suites[0]
      const last = suites[suites.length - 1]
      if (first !== undefined && last !== undefined) guard(file, first, last)
    }
  },
  afterAll () {
    // A leak already failed its file; it must not also keep the finished run alive.
    // A parallel run's worker is ended by mocha's pool; exiting here would kill the next file.
    if (leaked && process.env.MOCHA_WORKER_ID === undefined) {
      setTimeout(() => {
        process.exit(process.exitCode ?? 1)
      }, SETTLE_MS).unref()
    }
  },
  beforeEach (this: Context) {
    current = this.currentTest?.fullTitle() ?? '(unknown)'
  }
}
