import { readFileSync, writeFileSync } from 'node:fs'
import { spawnManaged, type ManagedProcess } from '../../test/fixtures/child.js'
import { waitFor } from '../../test/fixtures/wait.js'
import { FILE_SERVER_SOURCE } from './file-server.js'

export interface Memory {
  /** Current resident set, bytes. */
  rss: number
  /** Peak resident set since start or the last resetPeak(), bytes. */
  hwm: number
}

function kb (status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)
  if (m === null) throw new Error(`no ${field} in /proc status`)
  return Number(m[1]) * 1024
}

export function memory (pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return { rss: kb(status, 'VmRSS'), hwm: kb(status, 'VmHWM') }
}

/** Resets VmHWM to the current RSS (clear_refs "5"); false if the kernel refused. */
export function resetPeak (pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/**
 * Peak RSS of `pid` while `work` runs: VmHWM after a reset when the kernel allows it, and in
 * any case the maximum of VmRSS sampled every `intervalMs`.
 */
export async function peakRssDuring<T> (
  pid: number,
  work: () => Promise<T>,
  intervalMs = 20
): Promise<{ result: T, peak: number, before: number, hwmUsed: boolean }> {
  const before = memory(pid).rss
  const hwmUsed = resetPeak(pid)
  let sampled = before
  const timer = setInterval(() => {
    try {
      sampled = Math.max(sampled, memory(pid).rss)
    } catch { /* exited; the work will fail */ }
  }, intervalMs)
  try {
    const result = await work()
    const end = memory(pid)
    sampled = Math.max(sampled, end.rss)
    return { result, peak: hwmUsed ? Math.max(sampled, end.hwm) : sampled, before, hwmUsed }
  } finally {
    clearInterval(timer)
  }
}

export interface FileServer {
  url: string
  pid: number
  proc: ManagedProcess
  stop: () => Promise<void>
}

/** Starts the baseline file server (file-server.ts) in its own plain node process, serving `file`. */
export async function startFileServer (file: string, env: NodeJS.ProcessEnv = {}): Promise<FileServer> {
  let port: number | undefined
  const proc = spawnManaged(process.execPath, ['--input-type=module', '-e', FILE_SERVER_SOURCE], {
    env: { PATH: process.env.PATH, BENCH_FILE: file, ...env },
    onLine: line => {
      const m = /^listening (\d+)$/.exec(line)
      if (m !== null) port = Number(m[1])
    }
  })
  try {
    const bound = await waitFor(() => {
      if (!proc.isRunning()) throw new Error(`file server exited: ${proc.tail(10)}`)
      return port
    }, { timeoutMs: 20_000, intervalMs: 20, what: 'file server to listen' })
    const pid = proc.child.pid
    if (pid === undefined) throw new Error('file server has no pid')
    return {
      url: `http://127.0.0.1:${bound}`,
      pid,
      proc,
      stop: async () => {
        await proc.stop(5_000)
      }
    }
  } catch (err) {
    await proc.stop(2_000)
    throw err
  }
}

const CLOCK_TICKS = 100 // USER_HZ; 100 on every Linux architecture Node supports

/** User and system CPU seconds `pid` has used so far (/proc/<pid>/stat utime + stime). */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the full line, 12 and 13 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** CPU seconds every process on this machine has used so far, all cores summed (/proc/stat: everything but idle and iowait). */
export function machineCpuSeconds (): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
}
