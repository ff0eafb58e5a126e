/** At shutdown, downloads in flight get this long (ms) to commit before the index closes. */
export const DOWNLOAD_DRAIN_MS = 10_000

/** The status page's reachability checks run at most this often (ms), and only while a page looks. */
export const REACHABILITY_TTL_MS = 10 * 60_000
