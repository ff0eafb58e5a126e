/** The first path component of repositories that accept pushes (CACHE_LOCAL_NAMESPACE's default). */
export const DEFAULT_LOCAL_NAMESPACE = 'local'
/** An upload session untouched this long expires; its temporary file is removed. */
export const UPLOAD_IDLE_MS = 15 * 60_000
/** Upload sessions open at once, at most; a new one past it is refused with 429. */
export const MAX_UPLOAD_SESSIONS = 256
/** Expired sessions are looked for this often. */
export const UPLOAD_SWEEP_MS = 60_000
