/** The hit history is sampled this often (ms): one point of the page's chart. */
export const HISTORY_INTERVAL_MS = 10_000

/** Points of the hit history kept: an hour at HISTORY_INTERVAL_MS. */
export const HISTORY_POINTS = 360

/** A live page (server-sent events) gets the status this often (ms). */
export const STATUS_PUSH_MS = 2_000

/** The store's pins are counted at most this often (ms): counting reads every record. */
export const PINS_TTL_MS = 30_000

/** Pages following the status at once; more get 503 (each costs a status every STATUS_PUSH_MS). */
export const MAX_LIVE_PAGES = 16

/** Images listed, most pulled and largest each. */
export const TOP_IMAGES = 10

/** Warnings listed, newest first. */
export const WARNINGS_SHOWN = 20
