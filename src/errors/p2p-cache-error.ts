/** Exit codes of the CLI: a command that failed, and one that could not run as configured (the message says what to change). */
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

export interface P2pCacheErrorOptions {
  /** The CLI exits with this when the error ends a command (default EXIT_FAILURE). */
  exitCode?: number
  /** The HTTP status an answer carries for it (default 500; an OciError's own status). */
  httpStatus?: number
  cause?: unknown
}

/**
 * The base of the sidecar's own errors: each says what was wrong and what to do, and carries the
 * CLI's exit code and the HTTP status of an answer it ends. `name` is the subclass's name.
 */
export class P2pCacheError extends Error {
  readonly exitCode: number
  readonly httpStatus: number

  constructor (message: string, options: P2pCacheErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined)
    this.name = new.target.name
    this.exitCode = options.exitCode ?? EXIT_FAILURE
    this.httpStatus = options.httpStatus ?? 500
  }
}
