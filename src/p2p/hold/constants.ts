/**
 * `/p2p-cache/hold/1.0.0` (issue 25): "fetch these from me, keep them, and say so". What a push
 * to the local namespace waits for before it is acknowledged, so the push survives its runner.
 */
export const HOLD_PROTOCOL = '/p2p-cache/hold/1.0.0'
/** Digests one hold request names at most (a push with more is sent in several). */
export const HOLD_MAX_KEYS = 256
/** Records one hold request carries at most. */
export const HOLD_MAX_RECORDS = 64
/** Largest request frame: HOLD_MAX_KEYS digests with media types, and HOLD_MAX_RECORDS records. */
export const HOLD_MAX_REQUEST_BYTES = 512 * 1024
/** Hold requests a peer may have open on one connection at once. */
export const HOLD_MAX_STREAMS = 8
/**
 * A holder gives up on a request after this long, whatever the asker waits: its fetches are
 * bounded by CACHE_PEER_FIRST_BYTE_TIMEOUT too, this bounds the whole.
 */
export const HOLD_SERVE_MAX_MS = 10 * 60_000
