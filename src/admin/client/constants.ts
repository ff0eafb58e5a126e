/**
 * Budget of one request to a sidecar, headers and body together, in ms, unless the client is
 * made with another: the sidecar answers its API from memory, so more means it is not there.
 */
export const DEFAULT_TIMEOUT_MS = 5_000

/** Budget of POST /api/cache/gc, in ms: the sidecar prunes before it answers, which takes a while on a large store. */
export const GC_TIMEOUT_MS = 120_000

/**
 * The most bytes a JSON or text answer may hold: the sidecar's answers are a few KiB, and
 * whatever else answers on that URL must not fill this process's memory.
 */
export const MAX_ANSWER_BYTES = 1024 * 1024

/** The most bytes of an error answer read for its message (the sidecar's are one short JSON object). */
export const MAX_ERROR_BYTES = 64 * 1024
