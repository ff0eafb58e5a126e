import { DIALBACK_PROTOCOL } from '../p2p/constants.js'
import { requestDialback } from '../p2p/dialback.js'
import type { BootstrapResult } from './bootstrap.js'
import { fail, ok, skip, warn, type Finding } from './finding.js'
import { isLoopback } from './ip.js'
import { DIALBACK_TIMEOUT_MS } from './constants.js'
import type { AnnouncedAddr } from './announce.js'

export interface DialbackInput {
  announced: AnnouncedAddr[]
  peers: BootstrapResult[]
  /** Who should answer at the announced addresses: the running sidecar, or the probe when it holds the port. */
  target: string | undefined
  networkMode: 'host' | 'bridge' | 'unknown'
  signal: AbortSignal
}

/**
 * A peer on another host dials each announced address that carries the IP it sees this node
 * as, and reports whether it reached this node: the proof that the port is published and open.
 */
export async function checkDialback (input: DialbackInput): Promise<Finding[]> {
  const helper = input.peers.find(p =>
    p.connection !== undefined && p.host !== undefined && !isLoopback(p.host) && p.protocols?.includes(DIALBACK_PROTOCOL) === true
  )
  if (helper?.connection === undefined) return [skip('announce.dialback', 'no connected peer on another host that can dial back')]
  if (input.target === undefined) {
    return [skip('announce.dialback', 'the P2P port is held by another process, so nothing of ours answers there')]
  }
  const seenAs = helper.observed === undefined ? undefined : /^\/ip[46]\/([^/]+)/.exec(helper.observed)?.[1]
  const candidates = input.announced.filter(a => a.host === seenAs)
  if (candidates.length === 0) {
    return [skip('announce.dialback', `no announced address has the IP peers see (${seenAs ?? 'unknown'}); see announce.addresses`)]
  }
  const peer = helper.connection.remotePeer.toString()
  const out: Finding[] = []
  for (const a of candidates) {
    const addr = `${a.text}/p2p/${input.target}`
    const subject = a.text
    try {
      const answer = await requestDialback(
        helper.connection,
        addr,
        { signal: AbortSignal.any([input.signal, AbortSignal.timeout(DIALBACK_TIMEOUT_MS * 2)]) }
      )
      const facts = { peer, addr: a.text, status: answer.status, rttMs: answer.rttMs ?? null, message: answer.message ?? null }
      if (answer.status === 'ok') {
        out.push(
          ok(
            'announce.dialback',
            `peer ${peer.slice(0, 12)}… dialled ${a.text} back and reached this node (${answer.rttMs ?? '?'} ms)`,
            facts,
            subject
          )
        )
      } else if (answer.status === 'failed') {
        const fix = input.networkMode === 'bridge'
          ? `publish the P2P port on the host: \`-p ${a.port}:9000\` (docker run) or \`ports: ["${a.port}:9000"]\` (compose), or use \`--network host\``
          : `open TCP ${a.port} in this host's firewall for the other runners, or announce an address they can reach (CACHE_ANNOUNCE_ADDRS)`
        out.push(
          fail(
            'announce.dialback',
            `peer ${peer.slice(0, 12)}… could not dial ${a.text} back: ${answer.message ?? 'failed'}`,
            fix,
            facts,
            subject
          )
        )
      } else {
        out.push(
          warn(
            'announce.dialback',
            `peer ${peer.slice(0, 12)}… did not dial back (${answer.status}${answer.message !== undefined ? `: ${answer.message}` : ''})`,
            'run diagnose again in a moment',
            facts,
            subject
          )
        )
      }
    } catch (err) {
      out.push(
        warn(
          'announce.dialback',
          `dial-back request to ${peer.slice(0, 12)}… failed: ${(err as Error).message}`,
          'the peer may run an older p2p-cache; update it and run diagnose again',
          { peer },
          subject
        )
      )
    }
  }
  return out
}
