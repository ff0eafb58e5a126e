/** Budgets of the diagnose checks: each check is bounded, so `diagnose` always finishes. */
export const TCP_TIMEOUT_MS = 3_000
/** How long to listen after connecting for a pnet nonce, which a private-swarm peer sends at once. */
export const PNET_SNIFF_MS = 300
export const DIAL_TIMEOUT_MS = 5_000
export const IDENTIFY_TIMEOUT_MS = 3_000
export const HTTP_TIMEOUT_MS = 5_000
/** Provide + find of the DHT probe record. */
export const DHT_TIMEOUT_MS = 10_000
/** How long the routing table may stay empty after connecting before the peers are redialled once. */
export const ROUTING_TABLE_RETRY_MS = 3_000
/** Dial-back of an announced address by a peer. */
export const DIALBACK_TIMEOUT_MS = 5_000
/** Clock skew (against an upstream's Date header) worth a warning: tokens and TLS start failing. */
export const CLOCK_SKEW_WARN_MS = 60_000

/** The most of an answer a check reads (a docker /info, a GitHub API object, a Twirp answer). */
export const MAX_ANSWER_BYTES = 1024 * 1024
