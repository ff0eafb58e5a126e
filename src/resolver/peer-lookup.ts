import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { TagKey } from '../oci/tag-key.js'
import type { Swarm } from '../p2p/swarm.js'
import type { PeerRef } from '../p2p/fetch/client.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { MAX_PEER_ATTEMPTS } from '../p2p/constants.js'

export interface PeerLookupInit {
  swarm: Swarm
  /** Budget for finding providers (CACHE_PEER_LOOKUP_TIMEOUT); then the upstream answers. */
  lookupTimeoutMs: number
  /** A peer silent this long (first byte or mid-transfer) is dropped (CACHE_PEER_FIRST_BYTE_TIMEOUT). */
  idleMs: number
  log: Logger
}

/**
 * Tries the providers of `key` (a digest or a tag key) in the order the DHT finds them, at most MAX_PEER_ATTEMPTS,
 * until `attempt` returns a value. A PeerFetchError from one peer (dead, busy, slow, lying)
 * moves on to the next; other errors (local disk) propagate. Undefined = ask the upstream.
 */
export async function tryProviders<T> (
  init: PeerLookupInit,
  key: Digest | TagKey,
  signal: AbortSignal,
  attempt: (peer: PeerRef) => Promise<T | undefined>
): Promise<T | undefined> {
  const { swarm, log } = init
  const lookup = new AbortController()
  const timer = setTimeout(() => { lookup.abort(new Error(`no provider within ${init.lookupTimeoutMs} ms`)) }, init.lookupTimeoutMs)
  const providers = swarm.providers(key, AbortSignal.any([signal, lookup.signal]))
  let attempts = 0
  let result: T | undefined
  try {
    for await (const peer of providers) {
      // Denied while this lookup ran (it lied about another blob a moment ago).
      if (swarm.isDenied(peer.id.toString())) continue
      attempts++
      try {
        result = await attempt(peer)
      } catch (err) {
        if (!(err instanceof PeerFetchError) || signal.aborted) throw err
        log.info({ key, peer: err.peer, reason: err.reason, err: err.message }, 'peer fetch failed; trying the next source')
      }
      // Stop the DHT query before leaving the loop: ending the iteration waits for it.
      if (result !== undefined || attempts >= MAX_PEER_ATTEMPTS) {
        lookup.abort()
        break
      }
    }
  } catch (err) {
    if (signal.aborted) throw err
    if (!lookup.signal.aborted) log.warn({ key, err: (err as Error).message }, 'provider lookup failed')
  } finally {
    clearTimeout(timer)
    lookup.abort()
  }
  if (result !== undefined) return result
  log.debug({ key, attempts }, attempts === 0 ? 'no provider found' : 'no provider could serve')
  return undefined
}
