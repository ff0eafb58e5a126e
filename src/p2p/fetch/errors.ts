import { P2pCacheError } from '../../errors/p2p-cache-error.js'
/** Why a fetch from one peer failed; the resolver then tries another provider or the upstream. */
/**
 * `restarted`: the peer's own copy of a blob in progress started over (its bytes did not verify)
 * since it handed out piece hashes: the pieces checked against them are suspect, and the peer is
 * not at fault.
 */
export type PeerFetchFailure =
  | 'dial'
  | 'not_found'
  | 'busy'
  | 'refused'
  | 'stalled'
  | 'truncated'
  | 'protocol'
  | 'mismatch'
  | 'too_large'
  | 'restarted'

export class PeerFetchError extends P2pCacheError {
  /**
   * `have`: a `busy` answer's count of bytes the peer holds verified (fetch/1.2.0), so the asker
   * knows which pieces it could serve.
   */
  constructor (readonly peer: string, readonly reason: PeerFetchFailure, detail: string, readonly have?: number) {
    super(`peer ${peer}: ${detail}`)
  }
}
