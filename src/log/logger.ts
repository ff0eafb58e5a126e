import { pino, type Logger, type Level } from 'pino'

export function createLogger (level: Level | 'silent'): Logger {
  return pino({ name: 'p2p-cache', level, base: { pid: process.pid } })
}
