/**
 * Piece transfers (issue 23): how a receiver spreads a blob's pieces over the holders. See
 * piece-fetch.ts.
 */

/** Transfers one receiver runs at once for one blob, across holders. */
export const PIECE_LANES = 3
/**
 * Of those, how many may go to the holder the coordinator named: one, following its download in
 * order, so the prefix this node serves to its own follower grows at the link's full rate.
 */
export const NAMED_HOLDER_LANES = 1
/** Pieces asked for in one request (a run): 16 MiB, one request and one data channel handshake. */
export const RUN_PIECES = 16
/** A holder whose progress is unknown is asked for it (a header-only request) at most this often. */
export const PROBE_INTERVAL_MS = 1_000
/** A holder whose probes find nothing this receiver lacks is asked less often, doubling up to this. */
export const PROBE_INTERVAL_MAX_MS = 4_000
/** A busy holder is asked again after this, doubling (jittered)... */
export const HOLDER_BUSY_FIRST_MS = 100
/** ...up to this. */
export const HOLDER_BUSY_MAX_MS = 2_000
/**
 * After a hashes answer, the next request waits this long unless a piece is held up for a hash:
 * the hash source answers as soon as it has one more, and asking again at once cost one stream
 * per piece per receiver (about half of a 10-node herd's fetch streams; issue 23).
 */
export const HASHES_BATCH_MS = 300
/** A hashes request may wait this long for its answer (the holder waits HASHES_WAIT_MS for a next piece). */
export const HASHES_IDLE_MS = 15_000
/** Stalled or dropped transfers in a row after which a holder is no longer asked for this blob. */
export const MAX_SOURCE_FAILURES = 3
