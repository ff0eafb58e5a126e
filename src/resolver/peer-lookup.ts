import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { TagKey } from '../oci/tag-key.js'
import type { ApiKey } from '../keys/api-key.js'
import type { RecordKey } from '../keys/record-key.js'
import type { PeerNetwork } from './peer-network.js'
import type { PeerRef } from '../p2p/fetch/client.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { MAX_PEER_ATTEMPTS } from '../p2p/constants.js'
import type { Stats } from '../metrics/stats.js'

export interface PeerLookupInit {
  swarm: PeerNetwork
  /** Budget for finding providers (CACHE_PEER_LOOKUP_TIMEOUT); then the upstream answers. */
  lookupTimeoutMs: number
  /** A peer silent this long (first byte or mid-transfer) is dropped (CACHE_PEER_FIRST_BYTE_TIMEOUT). */
  idleMs: number
  stats: Stats
  log: Logger
}

export interface TryOptions {
  /** Cancellation by the caller (shutdown): rethrown. */
  signal?: AbortSignal
  /** Overall budget for finding and fetching: when it runs out the answer is "go upstream". */
  budgetMs?: number
  /** Peers not to try (by peer ID string): e.g. the busy holder the caller waits for anyway. */
  exclude?: ReadonlySet<string>
}

/**
 * Tries the providers of `key` (a digest or a tag key) in the order the DHT finds them, at most
 * MAX_PEER_ATTEMPTS, until `attempt` returns a value. Finding providers is bounded by the lookup
 * budget; providers found within it are tried in turn. A PeerFetchError from one peer (dead,
 * busy, slow, lying) moves on to the next; other errors (the local disk) propagate.
 * Undefined = ask the upstream.
 */
export async function tryProviders<T> (
  init: PeerLookupInit,
  key: Digest | TagKey | ApiKey | RecordKey,
  opts: TryOptions,
  attempt: (peer: PeerRef, options: Required<AbortOptions>) => Promise<T | undefined>
): Promise<T | undefined> {
  const { swarm, log } = init
  const caller = opts.signal ?? new AbortController().signal
  const lookup = new AbortController()
  const budget = new AbortController()
  const lookupTimer = setTimeout(() => {
    lookup.abort(new Error(`no provider within ${init.lookupTimeoutMs} ms`))
  }, init.lookupTimeoutMs)
  const budgetTimer = opts.budgetMs === undefined ? undefined : setTimeout(() => {
    budget.abort(new Error(`peers took longer than ${opts.budgetMs ?? 0} ms`))
  }, opts.budgetMs)
  const attemptSignal = AbortSignal.any([caller, budget.signal])
  const providers = swarm.providers(key, { signal: AbortSignal.any([attemptSignal, lookup.signal]) })
  let attempts = 0
  let result: T | undefined
  try {
    for (;;) {
      let next: IteratorResult<PeerRef>
      try {
        next = await providers.next()
      } catch (err) {
        // The lookup ran out or failed: that is a miss, not an error, unless the caller cancelled.
        if (caller.aborted) throw err
        if (!lookup.signal.aborted && !budget.signal.aborted) log.warn({ key, err: (err as Error).message }, 'provider lookup failed')
        break
      }
      if (next.done === true) break
      const peer = next.value
      // Denied while this lookup ran (it lied about another blob a moment ago).
      if (swarm.isDenied(peer.id.toString()) || opts.exclude?.has(peer.id.toString()) === true) continue
      attempts++
      try {
        result = await attempt(peer, { signal: attemptSignal })
      } catch (err) {
        if (!(err instanceof PeerFetchError)) throw err
        if (caller.aborted) throw err
        log.info({ key, peer: err.peer, reason: err.reason, err: err.message }, 'peer fetch failed; trying the next source')
        if (budget.signal.aborted) break
      }
      if (result !== undefined || attempts >= MAX_PEER_ATTEMPTS) break
    }
  } finally {
    clearTimeout(lookupTimer)
    clearTimeout(budgetTimer)
    // Stop the DHT query before ending the iteration: return() waits for it.
    lookup.abort()
    await providers.return(undefined).catch(() => {})
  }
  if (result !== undefined) return result
  log.debug({ key, attempts }, attempts === 0 ? 'no provider found' : 'no provider could serve')
  return undefined
}
