import { pino, type Logger } from 'pino'

/** One log line as pino wrote it: `msg`, `level` (30 info, 40 warn...) and the bound fields. */
export interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

/** A logger that keeps its lines in memory, for tests that check what an operator would read. */
export function recordingLog (level: 'debug' | 'info' | 'warn' = 'debug'): { log: Logger, lines: LogLine[], messages: () => string[] } {
  const lines: LogLine[] = []
  const log = pino(
    { level },
    {
      write: (line: string) => {
        lines.push(JSON.parse(line) as LogLine)
      }
    }
  )
  return { log, lines, messages: () => lines.map(l => l.msg) }
}
