import { setTimeout as sleep } from 'node:timers/promises'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { P2pNode } from './node.js'
import { BOOTSTRAP_RETRY_MAX_MS, BOOTSTRAP_RETRY_MIN_MS, DIAL_TIMEOUT_MS } from './constants.js'

export interface BootstrapDialerComponents {
  node: P2pNode
  log: Logger
}

/**
 * Keeps a connection to each bootstrap peer. @libp2p/bootstrap dials them once at start-up;
 * a runner whose bootstrap peer is not up yet (compose start order, a restarting host) must
 * keep trying: each unreachable peer is a warning and a redial with exponential backoff, and a
 * lost connection is redialled.
 */
export class BootstrapDialer {
  private readonly controller = new AbortController()
  private loops: Array<Promise<void>> = []

  constructor (private readonly components: BootstrapDialerComponents, private readonly peers: Multiaddr[]) {}

  start (): void {
    this.loops = this.peers.map(async ma => { await this.keep(ma).catch(() => {}) })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await Promise.all(this.loops)
  }

  private async keep (ma: Multiaddr): Promise<void> {
    const { node, log } = this.components
    const signal = this.controller.signal
    const id = peerIdFromString(ma.getComponents().findLast(c => c.name === 'p2p')?.value ?? '')
    let delay = BOOTSTRAP_RETRY_MIN_MS
    let failures = 0
    while (!signal.aborted) {
      // The first dial is @libp2p/bootstrap's, at start-up.
      await sleep(delay, undefined, { signal })
      if (node.getConnections(id).length > 0) {
        if (failures > 0) log.info({ bootstrap: ma.toString() }, 'connected to bootstrap peer')
        failures = 0
        delay = BOOTSTRAP_RETRY_MIN_MS
        await this.disconnected(id, signal)
        continue
      }
      try {
        await node.dial(ma, { signal: AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
      } catch (err) {
        if (signal.aborted) return
        failures++
        log.warn({ bootstrap: ma.toString(), attempt: failures, retryInMs: Math.min(delay * 2, BOOTSTRAP_RETRY_MAX_MS), err: (err as Error).message },
          'bootstrap peer unreachable; retrying (check the address with `p2p-cache diagnose`)')
        delay = Math.min(delay * 2, BOOTSTRAP_RETRY_MAX_MS)
        continue
      }
      delay = 0
    }
  }

  private async disconnected (id: PeerId, signal: AbortSignal): Promise<void> {
    const { node } = this.components
    await new Promise<void>(resolve => {
      const done = (): void => {
        node.removeEventListener('peer:disconnect', onDisconnect)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const onDisconnect = (evt: CustomEvent<PeerId>): void => { if (evt.detail.equals(id)) done() }
      node.addEventListener('peer:disconnect', onDisconnect)
      signal.addEventListener('abort', done)
      // It may have dropped between the check and the listener.
      if (node.getConnections(id).length === 0) done()
    })
  }
}
