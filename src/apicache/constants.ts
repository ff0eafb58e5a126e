/** Bound of the in-memory copy of recently stored responses. */
export const HOT_MAX_BYTES = 32 * 1024 * 1024
export const HOT_MAX_ENTRIES = 4096

/**
 * The scope under which responses fetched with the fleet credential are stored (other scopes
 * are `anon` or 32 hex characters, so it can't collide).
 */
export const FLEET_SCOPE = 'fleet'

/**
 * How long a repository's visibility, learned with the fleet credential, is believed. Checking
 * it again is a revalidation of `/repos/{owner}/{repo}` (a free 304 while nothing changed), so
 * this is short: a repository made private stops being served to unproven clients within it.
 */
export const VISIBILITY_TTL_MS = 60_000
/** A repository the fleet credential can't see is asked about again after this long. */
export const HIDDEN_TTL_MS = 10 * 60_000

/**
 * How long a credential's proven read access to a private repository area is remembered. A
 * job's GITHUB_TOKEN is revoked when the job ends; within this time it may still be served.
 */
export const ACCESS_PROOF_TTL_MS = 10 * 60_000
/** Bound of remembered proofs (credential × repository × area) and visibilities. */
export const ACCESS_MAX_ENTRIES = 10_000

/** Accept of the fleet's `GET /repos/{owner}/{repo}` that learns a repository's visibility. */
export const VISIBILITY_ACCEPT = 'application/vnd.github+json'
/**
 * A repository's own resource (`/repos/{owner}/{repo}`, a few KiB of JSON) fetched with the
 * fleet credential is read whole up to this many bytes even when CACHE_API_MAX_BODY is lower:
 * its visibility is learned from the JSON (it is still stored only within CACHE_API_MAX_BODY).
 */
export const VISIBILITY_MAX_BYTES = 1024 * 1024

/** A failing fleet credential is logged at most this often per upstream. */
export const FLEET_WARN_INTERVAL_MS = 60_000

/**
 * Request headers that are part of every record's key (`authorization` as the scope, `accept`)
 * or never forwarded (`accept-encoding`): a response's `Vary` on them always matches.
 */
export const KEYED_REQUEST_HEADERS: ReadonlySet<string> = new Set(['accept', 'authorization', 'accept-encoding'])
