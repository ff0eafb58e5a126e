/** The claim protocol (src/p2p/claim/frames.ts). */
export const CLAIM_PROTOCOL = '/p2p-cache/claim/1.0.0'
/** 1.0.0 plus `others` in a join answer: the other holders of the key, partial ones included (issue 23). */
export const CLAIM_PROTOCOL_SWARM = '/p2p-cache/claim/1.1.0'
/** 1.1.0 plus `redirect` answers and `direct` requests (see frames.ts). */
export const CLAIM_PROTOCOL_REDIRECT = '/p2p-cache/claim/1.2.0'
/** The claim protocols a node serves, newest first. */
export const CLAIM_PROTOCOLS = [CLAIM_PROTOCOL_REDIRECT, CLAIM_PROTOCOL_SWARM, CLAIM_PROTOCOL]
/**
 * Redirects one claim follows before it asks the last node to answer itself: each goes to a
 * peer strictly closer to the key, so views converge in one or two round trips.
 */
export const CLAIM_MAX_REDIRECTS = 2
/**
 * Followers a holder that is still receiving a key is named to before the next holder is: a
 * herd forms a chain (the seeder serves one node, which serves the next...), each link at the
 * full rate of one uplink, instead of a star that shares the seeder's uplink N ways. Each hop
 * adds about one piece's transfer time; a receiver also takes pieces from the other holders.
 */
export const CLAIM_CHAIN_FANOUT = 1
/** Receivers of a key a coordinator remembers (the newest); past it the oldest go. */
export const CLAIM_MEMBERS_MAX = 64
/** Other holders one join answer names at most. */
export const CLAIM_OTHERS_MAX = 16
/**
 * A claim holder that does not renew within this long is presumed dead or stalled. A holder
 * that died is usually known sooner: its connection to the coordinator closes. Long enough
 * for renewals to get through a loaded coordinator (issue 23: 6.5 s round trips measured).
 */
export const CLAIM_LEASE_MS = 20_000
/** The holder renews this often while its download progresses. */
export const CLAIM_RENEW_MS = 3_000
/**
 * Reports that skip the last holder of a committed copy (no other holder or receiver left):
 * the first names it again (the joiner pauses and asks again), the second hands the reporter a
 * lease. A joiner's 3 s first-byte budget is an idle machine's; at 20 hosts on 2 cores one
 * report against a live holder cost Docker Hub a second manifest GET (issue 23).
 */
export const CLAIM_LAST_HOLDER_REPORTS = 2
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
/** A coordinator that did not answer a claim on a key is asked last about that key for this long. */
export const CLAIM_SILENT_MS = 30_000
/** Coordinators tried, closest first, before falling back to a provider lookup. */
export const CLAIM_COORDINATORS_TRIED = 2
/**
 * A coordinator that answered a claim on a key within CLAIM_ANSWERED_MS holds that key's
 * leases: when it times out while still connected, it is asked again this many times before
 * the next closest, which knows nothing of them and would grant a second lease (a 20-host herd
 * fetched a layer twice so: its coordinator was also the node fetching it, and answered in 13 s).
 */
export const CLAIM_PATIENT_ASKS = 2
/** How long a coordinator's answer on a key marks it as that key's coordinator (see CLAIM_PATIENT_ASKS). */
export const CLAIM_ANSWERED_MS = 60_000
/**
 * Concurrent claim streams on one connection, each way: a node's claims and renewals to one
 * loaded coordinator pile up (libp2p's default outbound limit, 64, refused some at 50 nodes).
 */
export const CLAIM_MAX_STREAMS = 256
