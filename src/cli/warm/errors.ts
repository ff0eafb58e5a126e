import { P2pCacheError } from '../../errors/p2p-cache-error.js'
/** The sidecar answered an error: its OCI code and message, and what to do about it. */
export class SidecarAnswerError extends P2pCacheError {
  constructor (readonly status: number, readonly code: string, message: string, readonly hint: string | undefined) {
    super(`the sidecar answered ${status} ${code}: ${message}`)
  }
}

/** The image's content is not what warm can pull: the message says what was found. */
export class UnusableImageError extends P2pCacheError {
  constructor (message: string, readonly hint?: string) {
    super(message)
  }
}
