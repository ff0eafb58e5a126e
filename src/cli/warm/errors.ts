/** The sidecar answered an error: its OCI code and message, and what to do about it. */
export class SidecarAnswerError extends Error {
  constructor (readonly status: number, readonly code: string, message: string, readonly hint: string | undefined) {
    super(`the sidecar answered ${status} ${code}: ${message}`)
    this.name = 'SidecarAnswerError'
  }
}

/** The image's content is not what warm can pull: the message says what was found. */
export class UnusableImageError extends Error {
  constructor (message: string, readonly hint?: string) {
    super(message)
    this.name = 'UnusableImageError'
  }
}

