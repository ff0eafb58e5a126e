/** The first path component of repositories that accept pushes (CACHE_LOCAL_NAMESPACE's default). */
export const DEFAULT_LOCAL_NAMESPACE = 'local'
/** An upload session untouched this long expires; its temporary file is removed. */
export const UPLOAD_IDLE_MS = 15 * 60_000
/** Upload sessions open at once, at most; a new one past it is refused with 429. */
export const MAX_UPLOAD_SESSIONS = 256
/** Expired sessions are looked for this often. */
export const UPLOAD_SWEEP_MS = 60_000
/**
 * A blob uploaded to the local namespace starts its way to a replica at once, before its
 * manifest is pushed; such a head start gets this long (the manifest PUT has its own deadline,
 * CACHE_LOCAL_REPLICA_TIMEOUT, and sends again what did not arrive).
 */
export const EAGER_REPLICA_MS = 10 * 60_000
/** Peer/digest copies remembered as placed (the most recent), so a push does not ask again. */
export const PLACED_COPIES_REMEMBERED = 50_000
/** A replica confirmed this long ago is asked for again (the holder may have let it go since). */
export const PLACED_COPY_TRUSTED_MS = 60 * 60_000
/** While fewer holders than wanted are connected, they are looked for again this often. */
export const HOLDERS_RETRY_MS = 1_000
/** "This push lives on this runner only" is warned about at most this often. */
export const NO_REPLICA_WARN_MS = 10 * 60_000
/**
 * A node that stops hands its kept content to peers, for at most this long: within the 10 s a
 * `docker stop` waits before SIGKILL, with the download drain before it.
 */
export const HANDOFF_MAX_MS = 8_000
