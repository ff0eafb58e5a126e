import type { Digest } from '../oci/digest.js'

/** Room made for the index when it can't open on a full filesystem (see freeForOpen). */
export const OPEN_ROOM_BYTES = 1024 * 1024
/** A full store counts as having space again once this much is free (or a blob committed). */
export const FULL_CLEAR_BYTES = 16 * 1024 * 1024
/** Avoids an index write on every hit; LRU order only needs coarse access times. */
export const ACCESS_TIME_RESOLUTION_MS = 60_000
/** Read size of a blob's stream (bytes): large reads keep the syscalls per GiB served low. */
export const READ_CHUNK = 1024 * 1024
/** The digest a writer made without one expects until `keyByContent`: nothing hashes to it, so an unkeyed commit fails. */
export const UNKEYED: Digest = `sha256:${'0'.repeat(64)}`
