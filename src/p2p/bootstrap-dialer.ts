import { setTimeout as sleep } from 'node:timers/promises'
import { Backoff } from '../clock/backoff.js'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { P2pNode } from './node.js'
import { pinnedPeerId } from './addresses.js'
import { BOOTSTRAP_RETRY_MAX_MS, BOOTSTRAP_RETRY_MIN_MS, DIAL_TIMEOUT_MS } from './constants.js'

export interface BootstrapDialerComponents {
  node: P2pNode
  log: Logger
}

/**
 * Keeps a connection to each bootstrap peer. @libp2p/bootstrap dials them once at start-up;
 * a runner whose bootstrap peer is not up yet (compose start order, a restarting host) must
 * keep trying: an unreachable peer is redialled with exponential backoff (a warning from the
 * second failure on: the first is often a peer still starting), and a lost connection is
 * redialled.
 */
export class BootstrapDialer {
  private readonly controller = new AbortController()
  private loops: Array<Promise<void>> = []

  constructor (private readonly components: BootstrapDialerComponents, private readonly peers: Multiaddr[]) {}

  start (): void {
    this.loops = this.peers.map(async ma => {
      await this.keep(ma).catch(() => {})
    })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await Promise.all(this.loops)
  }

  private async keep (ma: Multiaddr): Promise<void> {
    const { node, log } = this.components
    const signal = this.controller.signal
    const pinned = pinnedPeerId(ma)
    // Pinned: @libp2p/bootstrap made the first dial at start-up. Unpinned: this loop makes every
    // dial and learns the ID from the handshake, again after each disconnect (a peer that
    // restarted without its CACHE_DIR comes back with a new ID).
    let id: PeerId | undefined = pinned !== undefined ? peerIdFromString(pinned) : undefined
    let delay = pinned !== undefined ? BOOTSTRAP_RETRY_MIN_MS : 0
    const backoff = new Backoff(BOOTSTRAP_RETRY_MIN_MS, BOOTSTRAP_RETRY_MAX_MS)
    let failures = 0
    let self = false
    while (!signal.aborted) {
      await sleep(delay, undefined, { signal })
      if (id !== undefined && node.getConnections(id).length > 0) {
        if (failures > 0) log.info({ bootstrap: ma.toString(), peerId: id.toString() }, 'connected to bootstrap peer')
        failures = 0
        backoff.reset()
        delay = BOOTSTRAP_RETRY_MIN_MS
        await this.disconnected(id, { signal })
        continue
      }
      try {
        const conn = await node.dial(ma, { signal: AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
        if (pinned === undefined && id?.equals(conn.remotePeer) !== true) {
          id = conn.remotePeer
          log.info(
            { bootstrap: ma.toString(), peerId: id.toString() },
            'bootstrap address without /p2p/<id>: connected to the node that answered'
          )
        }
      } catch (err) {
        if (signal.aborted) return
        // A shared list without peer IDs names this node too (its own compose service name):
        // libp2p refuses to dial itself. Not a problem to warn about; look again now and then
        // in case the name moves to another node.
        if (isDialSelf(err)) {
          if (!self) log.debug({ bootstrap: ma.toString() }, 'bootstrap address is this node; skipped')
          self = true
          delay = BOOTSTRAP_RETRY_MAX_MS
          continue
        }
        failures++
        delay = backoff.next()
        // A fleet starting at once races: a first refusal is a peer not listening yet. From the
        // second one on, it is worth a warning.
        const fields = { bootstrap: ma.toString(), attempt: failures, retryInMs: delay, err: (err as Error).message }
        if (failures === 1) log.info(fields, 'bootstrap peer not reachable yet; retrying')
        else log.warn(fields, 'bootstrap peer unreachable; retrying (check the address with `p2p-cache diagnose`)')
        continue
      }
      delay = 0
    }
  }

  private async disconnected (id: PeerId, options: Required<AbortOptions>): Promise<void> {
    const { node } = this.components
    const { signal } = options
    await new Promise<void>(resolve => {
      const done = (): void => {
        node.removeEventListener('peer:disconnect', onDisconnect)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const onDisconnect = (evt: CustomEvent<PeerId>): void => {
        if (evt.detail.equals(id)) done()
      }
      node.addEventListener('peer:disconnect', onDisconnect)
      signal.addEventListener('abort', done)
      // It may have dropped between the check and the listener.
      if (node.getConnections(id).length === 0) done()
    })
  }
}

/** libp2p's answer to a dial that reached this very node. */
function isDialSelf (err: unknown): boolean {
  return err instanceof Error && err.name === 'InvalidPeerIdError' && /dial self/i.test(err.message)
}
