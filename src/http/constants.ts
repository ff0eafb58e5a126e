/**
 * Limits of the HTTP(S) listeners (issue 16: overload). The sidecar runs next to every CI job,
 * on loopback or a LAN: its clients (docker, containerd, skopeo, gh, curl) send a request's
 * headers in milliseconds and read a response as fast as their disk takes it. What a client
 * holds (a socket, a parser, and for a blob a file handle and a store lease) must be given back
 * when it stops doing either. nginx's defaults are the reference (client_header_timeout 60s,
 * keepalive_timeout 75s, send_timeout 60s, worker_connections 512-1024); the header timeout is
 * shorter here because no client of a sidecar is on a slow link.
 *
 * The four an operator may tune are CACHE_HTTP_* options (src/config/options.ts); the rest are
 * fixed.
 */

/**
 * A client has this long from connecting (or from the first byte of its next request on a
 * kept-alive connection) to send the complete request headers; slower ones get 408 and are
 * closed (Node's `headersTimeout`). CACHE_HTTP_HEADER_TIMEOUT.
 */
export const HEADER_TIMEOUT_MS = 10_000

/**
 * A kept-alive connection with no request in progress is closed after this long (Node's
 * `keepAliveTimeout`, advertised as `Keep-Alive: timeout=<s>`). Above the 60 s idle timeout of
 * common load balancers, so a proxy in front never reuses a connection the sidecar just
 * closed. CACHE_HTTP_IDLE_TIMEOUT.
 */
export const IDLE_TIMEOUT_MS = 65_000

/**
 * A client that accepts no byte of a response for this long (it stopped reading: the socket's
 * buffers are full), or sends no byte of a request body it announced, is disconnected: its file
 * handle and store lease are released. nginx's send_timeout. Time the sidecar itself spends
 * (waiting for an upstream or a peer) never counts: that is bounded by CACHE_UPSTREAM_TIMEOUT
 * and the peer timeouts. Node's socket timer notices a stop at its next expiry, so a reader is
 * cut between one and two of these after it stopped. CACHE_HTTP_STALL_TIMEOUT.
 */
export const STALL_TIMEOUT_MS = 60_000

/**
 * Connections open at once on each listener; more are closed as they arrive (a warning is
 * logged, at most once per DROP_WARN_INTERVAL_MS). A bound on descriptors and memory (a few
 * tens of KiB per idle connection) far above what a runner's jobs open (a pull uses a handful).
 * Lowered at start-up when the open-file limit would not leave room for the store and peers
 * (see FD_RESERVE). CACHE_HTTP_MAX_CONNECTIONS.
 */
export const MAX_CONNECTIONS = 4096

/**
 * A whole request (headers and body) must arrive within this long (Node's `requestTimeout`,
 * its default). Only a request body can take long: the API cache's pass-through of POST/PATCH.
 * Never below the header timeout (Node refuses that).
 */
export const REQUEST_TIMEOUT_MS = 300_000

/**
 * How often the header and request timeouts are checked. Node's default (30 s) would let a
 * connection outlive a 10 s header timeout by up to 30 s; the check walks the connection list
 * in C++ and costs microseconds.
 */
export const CONNECTIONS_CHECK_INTERVAL_MS = 1_000

/**
 * Request header bytes (Node's default; nginx allows 4 x 8k): what bounds a connection's memory
 * before its request is in. Larger requests get 431. (The header count is left at Node's 2000:
 * past it Node drops headers silently, which could be an `Authorization` or a `Range`.)
 */
export const MAX_HEADER_SIZE = 16 * 1024

/**
 * Descriptors kept out of the connection bound: downloads' temporary files, upstream and peer
 * connections, the level index. CACHE_HTTP_MAX_CONNECTIONS is lowered to
 * (open-file limit - FD_RESERVE) / (DESCRIPTORS_PER_CONNECTION x listeners) when it would not fit.
 */
export const FD_RESERVE = 512

/** What one client connection may hold: its socket, and the blob file it is being served from. */
export const DESCRIPTORS_PER_CONNECTION = 2

/** "Connection limit reached" is logged at most this often (one line per flood, not per socket). */
export const DROP_WARN_INTERVAL_MS = 60_000

/** What CACHE_TLS_CERT must be (the option table's wording, and tls.ts's errors'). */
export const TLS_CERT_EXPECTED = 'the path of a readable PEM certificate file (required with CACHE_HTTPS_ADDR)'
/** What CACHE_TLS_KEY must be. */
export const TLS_KEY_EXPECTED = 'the path of a readable PEM private key file matching CACHE_TLS_CERT (required with CACHE_HTTPS_ADDR)'
