import type { z } from 'zod'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/** A protocol frame that is not UTF-8 JSON of the expected shape; the message says what was wrong. */
export class FrameError extends P2pCacheError {
  constructor (message: string) {
    super(message)
  }
}

/**
 * Longest FrameError message. It goes back to the peer in an error frame whose `message` is
 * bounded (1000 characters in the fetch header and the claim answer), and into the log; zod's
 * messages echo the peer's input (an unknown key's name), which is as long as the frame allows.
 */
export const MAX_FRAME_ERROR_CHARS = 300

/** `text` cut to `max` characters, marked as cut. */
function bounded (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`
}

/**
 * The frames of this node's own protocols (fetch, claim, dial-back) are one length-prefixed
 * JSON object each; these encode one, and decode and validate one with a zod schema.
 */
export function encodeJsonFrame (value: object): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

/** Throws FrameError naming `what` when `bytes` is not UTF-8 JSON matching `schema`. */
export function decodeJsonFrame<T> (bytes: Uint8Array, schema: z.ZodType<T>, what: string): T {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw new FrameError(`${what} is not UTF-8 JSON`)
  }
  const result = schema.safeParse(value)
  if (!result.success) {
    throw new FrameError(bounded(`bad ${what}: ${result.error.issues.map(i => i.message).join('; ')}`, MAX_FRAME_ERROR_CHARS))
  }
  return result.data
}
