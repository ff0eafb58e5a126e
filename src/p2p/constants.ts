/** Protocol ids: our own namespace, so a node never joins (or answers) the public IPFS DHT. */
export const KAD_PROTOCOL = '/p2p-cache/kad/1.0.0'
export const FETCH_PROTOCOL = '/p2p-cache/fetch/1.0.0'
/** 1.0.0 plus the data channel: a request may accept, and a header may carry, a data channel offer. */
export const FETCH_PROTOCOL_DATA = '/p2p-cache/fetch/1.1.0'
/**
 * 1.1.0 plus pieces (issue 23): a request may ask for piece hashes, or for a range of pieces that
 * a node still receiving the blob serves from the bytes it already holds (see fetch/frames.ts).
 */
export const FETCH_PROTOCOL_PIECES = '/p2p-cache/fetch/1.2.0'
/** What a node serves and asks for, newest first (multistream-select picks the first both speak). */
export const FETCH_PROTOCOLS = [FETCH_PROTOCOL_PIECES, FETCH_PROTOCOL_DATA, FETCH_PROTOCOL]
/** Fetch protocols that carry the data channel offer. */
export const DATA_CHANNEL_PROTOCOLS = [FETCH_PROTOCOL_PIECES, FETCH_PROTOCOL_DATA]
/**
 * A blob moves between peers in pieces of this many bytes (the last one shorter), each with its
 * own sha256: a node that is still receiving a blob serves the pieces it verified, and a wrong
 * piece is caught before it is written or passed on. 1 MiB: one piece crosses a 100 Mbit link
 * in about 84 ms, so each relay hop adds little to a herd's time, and a 1 GiB layer has 1,024
 * hashes (32 KiB) to hand out.
 */
export const PIECE_SIZE = 1024 * 1024
/**
 * A node receiving a blob from peers (a relay) serves a piece request that starts less than this
 * past what it holds by following its own download; further ahead it answers `busy` with `have`.
 */
export const RELAY_FOLLOW_AHEAD = 4 * PIECE_SIZE
/** A hashes request to a node still fetching waits this long for a next piece before it is answered with none. */
export const HASHES_WAIT_MS = 5_000
/** Piece hashes one answer carries at most (64 hex characters each, inside the header). */
export const MAX_HASHES_PER_ANSWER = 100
export const DIALBACK_PROTOCOL = '/p2p-cache/dialback/1.0.0'
/** A dial-back (diagnose asking a peer to dial its announced address) gets this long. */
export const DIALBACK_TIMEOUT_MS = 5_000
export const MAX_CONCURRENT_DIALBACKS = 4

/** Identity key file in CACHE_DIR (protobuf-encoded libp2p private key, mode 0600). */
export const IDENTITY_FILE = 'identity.key'

/**
 * Provider records live minutes, not the IPFS 48 h: a runner that is gone must stop being
 * asked for blobs soon. Records are re-announced well before they expire.
 */
export const PROVIDE_VALIDITY_MS = 30 * 60_000
export const REPROVIDE_INTERVAL_MS = 5 * 60_000
export const REPROVIDE_THRESHOLD_MS = 15 * 60_000
/** How often stale provider records from other peers are dropped. */
export const PROVIDERS_CLEANUP_S = 5 * 60

/** Start-up announcement of what is already stored: batches, and a pause between them. */
export const ANNOUNCE_CONCURRENCY = 8
export const ANNOUNCE_BATCH_PAUSE_MS = 50
/** Parked announcements (no peers yet, or a failed query) are retried after this, doubling. */
export const ANNOUNCE_RETRY_MIN_MS = 500
export const ANNOUNCE_RETRY_MAX_MS = 60_000
/**
 * An announcement waits while this node moves blobs (downloads, uploads to peers), at most this
 * long: a provide is a DHT walk plus a record to each of the closest peers, and in a 10-node herd
 * the commit-time provides were half of the sidecars' CPU (issue 23). Claims find holders
 * meanwhile; the DHT is the fallback when no coordinator answers.
 */
export const ANNOUNCE_MAX_DEFER_MS = 30_000
/**
 * Quiet = no blob moving for this long, counted from when the key was queued: a pull resolves
 * its tag and manifest a moment before its blobs start, and those announcements wait for the blobs too.
 */
export const ANNOUNCE_QUIET_MS = 1_500
/** How often a deferred announcement looks whether the node is quiet. */
export const ANNOUNCE_QUIET_POLL_MS = 250
/** One `provide` query may take this long before it is retried later. */
export const PROVIDE_TIMEOUT_MS = 10_000

/** Dials (bootstrap, fetch) get their own short budget; a wrong swarm key can hang a dial. */
export const DIAL_TIMEOUT_MS = 5_000
/**
 * Least time libp2p's connection monitor waits for a keep-alive ping before it aborts the
 * connection (its default is 5 s): a peer whose host vanished is still dropped within a minute,
 * a peer that is only busy (20 sidecars and their pulls on 2 cores) keeps its connections.
 */
export const PING_MIN_TIMEOUT_MS = 30_000
export const BOOTSTRAP_RETRY_MIN_MS = 1_000
export const BOOTSTRAP_RETRY_MAX_MS = 30_000

/** A peer that sent wrong bytes is not asked again for this long. */
export const DENY_MS = 10 * 60_000
/** Providers tried for one blob before going upstream. */
export const MAX_PEER_ATTEMPTS = 3

/**
 * A transfer of a stored copy averaging less than this after the grace period is dropped for the
 * next source (a download in progress is exempt: it comes at its upstream's pace).
 */
export const PEER_MIN_RATE = 1024 * 1024
export const PEER_RATE_GRACE_MS = 10_000
/**
 * Silence tolerated from a peer serving a download in progress (instead of
 * CACHE_PEER_FIRST_BYTE_TIMEOUT): it can't send faster than its own upstream, which may pause
 * for seconds on a loaded registry. A dead peer is noticed at once (the connection resets); a hung
 * one stops renewing its claim lease, which lasts as long.
 */
export const IN_PROGRESS_IDLE_MS = 10_000
/** How long a fetch request waits for a download in progress to get its source before `busy`. */
export const IN_PROGRESS_READY_WAIT_MS = 1_000
/** Fetch protocol framing limits. */
export const MAX_REQUEST_BYTES = 1024
/** Room for MAX_HASHES_PER_ANSWER piece hashes, and for API records with long headers. */
export const MAX_RESPONSE_HEADER_BYTES = 16 * 1024
/** Bytes buffered from a peer before its stream is paused; the consumer takes them in batches. */
export const RECEIVE_HIGH_WATER = 4 * 1024 * 1024
/** Above yamux's 16 MiB window, so a paused stream is not reset while data in flight lands. */
export const MAX_READ_BUFFER = 32 * 1024 * 1024
/** Size of file reads when serving a blob to a peer. */
export const SEND_CHUNK = 256 * 1024
