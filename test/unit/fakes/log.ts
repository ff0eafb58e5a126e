import { pino, type Logger } from 'pino'

/** A logger that writes nothing; pass `level` to see a unit's logs while debugging a test. */
export function silentLog (level: 'silent' | 'debug' = 'silent'): Logger {
  return pino({ level })
}
