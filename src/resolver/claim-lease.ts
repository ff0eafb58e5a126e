import type { Digest } from '../oci/digest.js'
import type { ClaimOp } from '../p2p/claim/frames.js'
import type { PeerNetwork } from './peer-network.js'

/** The waits of a lease; production uses CLAIM_RENEW_MS and CLAIM_TIMEOUT_MS. */
export interface LeaseTiming {
  /** Renewed this often while bytes arrive. */
  renewMs: number
  /** One renew, done or release round trip to the coordinator. */
  timeoutMs: number
}

/**
 * The claim this node won on a key (issue 12): it fetches from the upstream and keeps the key's
 * coordinator informed. `during` renews it every `renewMs` while bytes arrive; a download that
 * stalls stops renewing, so the lease lapses and the next claim goes to another node. When the
 * coordinator is gone the renewal goes to the next closest, which takes it as a claim: the lease
 * moves with the coordinator role. `done` / `release` end it (best effort, in the background).
 */
export class ClaimLease {
  constructor (
    private readonly swarm: PeerNetwork,
    private readonly key: Digest,
    /** The coordinator that granted it (it may move, see `during`). */
    private coordinator: string,
    private readonly timing: LeaseTiming
  ) {}

  /** Runs `work` while renewing the lease each time `progress()` (bytes so far) moved since the last renewal. */
  async during (progress: () => number, work: () => Promise<void>): Promise<void> {
    let seen = -1
    const timer = setInterval(() => {
      const now = progress()
      if (now === seen) return
      seen = now
      void this.renew()
    }, this.timing.renewMs)
    timer.unref()
    try {
      await work()
    } finally {
      clearInterval(timer)
    }
  }

  /** The blob is committed: later claims are sent to this node. */
  done (): void {
    this.tell('done')
  }

  /** This node gave up (its clients left, or the upstream failed): the next claim fetches. */
  release (): void {
    this.tell('release')
  }

  private async renew (): Promise<void> {
    const request = { op: 'renew' as const, key: this.key }
    const { timeoutMs } = this.timing
    const answer =
      await this.swarm.claim(request, { signal: AbortSignal.timeout(timeoutMs), to: this.coordinator }).catch(() => undefined) ??
        await this.swarm.claim(request, { signal: AbortSignal.timeout(timeoutMs * 2) }).catch(() => undefined)
    if (answer !== undefined) this.coordinator = answer.coordinator
  }

  private tell (op: ClaimOp): void {
    void this.swarm.claim({ op, key: this.key }, { signal: AbortSignal.timeout(this.timing.timeoutMs), to: this.coordinator }).catch(
      () => {}
    )
  }
}
