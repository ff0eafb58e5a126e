import { EXIT_USAGE, P2pCacheError, type P2pCacheErrorOptions } from '../../errors/p2p-cache-error.js'

/** What a request to a sidecar failed with; `url` is the sidecar's base URL as given (--url, CACHE_HTTP_ADDR). */
export class SidecarError extends P2pCacheError {
  constructor (readonly url: string, message: string, options?: P2pCacheErrorOptions) {
    super(message, options)
  }
}

/**
 * No complete answer: the connection was refused or reset, the budget ran out, or the URL is
 * not one to connect to. The message is the one every command prints (exit 2 where it ends one).
 */
export class SidecarUnreachableError extends SidecarError {
  /** What went wrong, as the transport said it (e.g. "connect ECONNREFUSED 127.0.0.1:9080"). */
  readonly reason: string
  /** The system error code when there is one (ECONNREFUSED, ECONNRESET, …). */
  readonly code: string | undefined
  /** The request's budget ran out. */
  readonly timedOut: boolean

  constructor (url: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(url, `cannot reach a sidecar at ${url} (${reason}); is \`p2p-cache serve\` running? Pass --url or set CACHE_HTTP_ADDR`, {
      cause,
      exitCode: EXIT_USAGE
    })
    this.reason = reason
    // undici puts the socket's code on the error itself or on its cause, depending on the stage.
    const e = cause as { code?: unknown, cause?: { code?: unknown } } | undefined
    const code = e?.code ?? e?.cause?.code
    this.code = typeof code === 'string' ? code : undefined
    this.timedOut = cause instanceof Error && cause.name === 'TimeoutError'
  }
}

/** The sidecar answered with a status other than 2xx. */
export class SidecarStatusError extends SidecarError {
  /**
   * @param request - method and path, e.g. "POST /api/cache/gc"
   * @param detail - the sidecar's own message (its JSON `error`), if it gave one
   */
  constructor (url: string, readonly request: string, readonly status: number, readonly detail: string | undefined) {
    super(url, `${request} answered ${status}${detail !== undefined ? `: ${detail}` : ''}`)
  }
}

/** The answer came, but is not one to use: larger than the bound, not JSON, not the expected content. */
export class SidecarBadAnswerError extends SidecarError {
  /** @param request - method and path, e.g. "GET /api/cache/stats" */
  constructor (url: string, readonly request: string, readonly reason: string) {
    super(url, `${request}: ${reason}`)
  }
}
