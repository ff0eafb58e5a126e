/** At shutdown, downloads in flight get this long (ms) to commit before the index closes. */
export const DOWNLOAD_DRAIN_MS = 10_000
