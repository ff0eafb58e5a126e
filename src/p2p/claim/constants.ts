/** The claim protocol (src/p2p/claim/frames.ts). */
export const CLAIM_PROTOCOL = '/p2p-cache/claim/1.0.0'
/**
 * A claim holder that does not renew within this long is presumed dead or stalled. A holder
 * that died is usually known sooner: its connection to the coordinator closes. Long enough
 * for renewals to get through a loaded coordinator (issue 23: 6.5 s round trips measured).
 */
export const CLAIM_LEASE_MS = 20_000
/** The holder renews this often while its download progresses. */
export const CLAIM_RENEW_MS = 3_000
/** After `done`, claims are sent to the holder for this long (its provider record lasts longer). */
export const CLAIM_DONE_TTL_MS = 10 * 60_000
/** Keys a coordinator tracks at once; the oldest go first. */
export const CLAIM_TABLE_MAX = 100_000
/**
 * One claim round trip, dial included: past it the next coordinator is asked. Twice as long as
 * a dial may take (DIAL_TIMEOUT_MS): a busy but live coordinator that is passed over can grant a
 * second lease, which costs a second upstream fetch, and on a loaded machine (20 runners'
 * sidecars and pulls on 2 cores) round trips of 6.5 s were measured. A dead one is usually known
 * at once (connection refused or reset).
 */
export const CLAIM_TIMEOUT_MS = 10_000
/** Coordinators tried, closest first, before falling back to a provider lookup. */
export const CLAIM_COORDINATORS_TRIED = 2
/** Concurrent claim streams one connection may open. */
export const CLAIM_MAX_INBOUND_STREAMS = 256
