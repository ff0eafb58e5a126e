/** Why a fetch from one peer failed; the resolver then tries another provider or the upstream. */
export type PeerFetchFailure = 'dial' | 'not_found' | 'busy' | 'refused' | 'stalled' | 'truncated' | 'protocol' | 'mismatch' | 'too_large'

export class PeerFetchError extends Error {
  constructor (readonly peer: string, readonly reason: PeerFetchFailure, detail: string) {
    super(`peer ${peer}: ${detail}`)
    this.name = 'PeerFetchError'
  }
}
