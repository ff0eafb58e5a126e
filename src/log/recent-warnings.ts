/** One warning or error the sidecar logged. */
export interface LoggedWarning {
  /** ISO 8601. */
  time: string
  level: 'warn' | 'error' | 'fatal'
  msg: string
  /** The logger's `component` (store, p2p, resolver...), when it has one. */
  component: string | undefined
}

/** Warnings kept; the oldest go first. */
const MAX_WARNINGS = 50

/** The last warnings and errors logged (pino levels ≥ 40), newest last, for the status page. */
export class RecentWarnings {
  private readonly items: LoggedWarning[] = []

  constructor (private readonly max = MAX_WARNINGS) {}

  add (warning: LoggedWarning): void {
    this.items.push(warning)
    if (this.items.length > this.max) this.items.shift()
  }

  list (): LoggedWarning[] {
    return [...this.items]
  }
}
