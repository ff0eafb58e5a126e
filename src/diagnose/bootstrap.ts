import { lookup } from 'node:dns/promises'
import { connect } from 'node:net'
import type { AbortOptions, Connection, IdentifyResult, PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { AddressError, parseBootstrapAddr, pinnedPeerId } from '../p2p/addresses.js'
import { FETCH_PROTOCOL, KAD_PROTOCOL } from '../p2p/constants.js'
import type { P2pNode } from '../p2p/node.js'
import { fail, ok, warn, type Finding } from './finding.js'
import { DIAL_TIMEOUT_MS, IDENTIFY_TIMEOUT_MS, PNET_SNIFF_MS, TCP_TIMEOUT_MS } from './constants.js'

/** What the checks of one bootstrap peer found, beyond the findings: inputs of later checks. */
export interface BootstrapResult {
  entry: string
  findings: Finding[]
  /** The entry could not be parsed: unusable input (exit 2 when it came from --bootstrap). */
  malformed: boolean
  /** The host other nodes reach this peer on (after DNS), when it resolved. */
  host?: string
  /** Connected over libp2p as the expected peer. */
  connection?: Connection
  /** The address the peer saw this node's connection come from (identify). */
  observed?: string
  /** The protocols the peer runs (identify). */
  protocols?: string[]
}

export interface BootstrapCheckInit {
  node: P2pNode
  /** Whether this node has CACHE_SWARM_KEY. */
  swarmKey: boolean
  identified: (peer: PeerId, options: Required<AbortOptions>) => Promise<IdentifyResult | undefined>
  signal: AbortSignal
}

const SWARM_KEY_FIX = 'give every node the same CACHE_SWARM_KEY (print one with `p2p-cache swarm-key`), or unset it on every node'

/** parse → DNS → TCP connect → libp2p dial (Noise, swarm key, peer ID) → ping → identify; stops at the first failure. */
export async function checkBootstrapPeer (entry: string, init: BootstrapCheckInit): Promise<BootstrapResult> {
  const findings: Finding[] = []
  const result: BootstrapResult = { entry, findings, malformed: false }
  let ma: Multiaddr
  try {
    ma = parseBootstrapAddr(entry)
  } catch (err) {
    result.malformed = true
    findings.push(
      fail(
        'bootstrap.address',
        `malformed bootstrap address: ${(err as AddressError).reason ?? (err as Error).message}`,
        'use the exact line `p2p-cache id` prints on that node: /ip4/<address>/tcp/9000/p2p/<peer id> (or /dns4/<name>/tcp/9000/p2p/<peer id>)',
        undefined,
        entry
      )
    )
    return result
  }
  const parts = ma.getComponents()
  const expected = pinnedPeerId(ma) ?? ''
  const [hostPart, tcpPart] = parts
  if (hostPart === undefined || hostPart.name === 'dnsaddr' || tcpPart === undefined) {
    findings.push(ok('bootstrap.address', `${hostPart?.name ?? 'address'} entry; resolved by libp2p at dial time`, undefined, entry))
    return await dialPeer(ma, expected, result, init)
  }
  const port = Number(tcpPart.value)
  let host = hostPart.value ?? ''
  if (hostPart.name.startsWith('dns')) {
    const started = performance.now()
    try {
      const family = hostPart.name === 'dns4' ? 4 : hostPart.name === 'dns6' ? 6 : 0
      const found = await withTimeout(lookup(host, { family }), DIAL_TIMEOUT_MS, `no DNS answer for ${host} within ${DIAL_TIMEOUT_MS} ms`)
      findings.push(
        ok('bootstrap.address', `${host} resolves to ${found.address} (${ms(started)})`, { name: host, address: found.address }, entry)
      )
      host = found.address
    } catch (err) {
      findings.push(
        fail(
          'bootstrap.address',
          `DNS name ${host} does not resolve (${errCode(err)})`,
          `check the name: in docker compose it is the peer's service name on a shared network (/dns4/<service>/tcp/9000); or use /ip4/<address>/tcp/${port}/p2p/<id>`,
          { name: host, error: errCode(err) },
          entry
        )
      )
      return result
    }
  } else {
    findings.push(
      ok('bootstrap.address', `parses; ${expected !== '' ? `peer ${short(expected)}` : 'any peer (no /p2p/<id>)'} at ${host}:${port}`, {
        address: host,
        port
      }, entry)
    )
  }
  result.host = host

  const tcp = await tcpProbe(host, port, { signal: init.signal })
  if (tcp.error !== undefined) {
    const fixes: Record<string, string> = {
      ECONNREFUSED:
        `nothing listens there: start the peer's sidecar, and make its P2P port reachable (\`--network host\`, or \`-p ${port}:9000\` on a bridge network); its \`p2p-cache id\` prints the right address`,
      ETIMEDOUT: `open TCP ${port} between the hosts (firewall, security group), and check that ${host} is that host's address`,
      EHOSTUNREACH: `${host} is not reachable from here: use an address of the peer's host that this host can route to`,
      ENETUNREACH: `no route to ${host}: use an address of the peer's host on a network this host is on`
    }
    const what: Record<string, string> = {
      ECONNREFUSED: `TCP ${host}:${port} refused: nothing listens on that port`,
      ETIMEDOUT: `TCP ${host}:${port}: no answer within ${TCP_TIMEOUT_MS} ms (dropped by a firewall, or no such host)`,
      EHOSTUNREACH: `TCP ${host}:${port}: no route to host`,
      ENETUNREACH: `TCP ${host}:${port}: network unreachable`
    }
    findings.push(
      fail('bootstrap.tcp', what[tcp.error] ?? `TCP ${host}:${port} failed: ${tcp.error}`, fixes[tcp.error] ?? fixes.ETIMEDOUT ?? '', {
        error: tcp.error
      }, entry)
    )
    return result
  }
  findings.push(
    ok(
      'bootstrap.tcp',
      `TCP ${host}:${port} connects (${tcp.rttMs.toFixed(1)} ms)${tcp.pnet === true ? '; the peer is in a private swarm (swarm key)' : ''}`,
      { rttMs: round(tcp.rttMs), peerUsesSwarmKey: tcp.pnet ?? null },
      entry
    )
  )

  // What was learned about the swarm key before the handshake names the failure precisely.
  return await dialPeer(ma, expected, result, init, tcp.pnet)
}

async function dialPeer (
  ma: Multiaddr,
  expected: string,
  result: BootstrapResult,
  init: BootstrapCheckInit,
  peerPnet?: boolean
): Promise<BootstrapResult> {
  const { node, signal } = init
  const { findings, entry } = result
  // Dialed without /p2p/<id>: the handshake tells who is really there, so a wrong ID can be named.
  const target = multiaddr(ma.toString().replace(/\/p2p\/[^/]+$/, ''))
  const started = performance.now()
  let connection: Connection
  try {
    connection = await node.dial(target, { signal: AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
  } catch (err) {
    const reason = (err as Error).message
    if (init.swarmKey && peerPnet === false) {
      findings.push(
        fail('bootstrap.libp2p', 'handshake failed: this node has CACHE_SWARM_KEY but the peer is not in a private swarm', SWARM_KEY_FIX, {
          error: reason
        }, entry)
      )
    } else if (!init.swarmKey && peerPnet === true) {
      findings.push(
        fail(
          'bootstrap.libp2p',
          'handshake failed: the peer is in a private swarm (it expects a swarm key) and this node has no CACHE_SWARM_KEY',
          SWARM_KEY_FIX,
          { error: reason },
          entry
        )
      )
    } else if (init.swarmKey && peerPnet === true) {
      findings.push(
        fail('bootstrap.libp2p', 'handshake failed: swarm key mismatch (both nodes use a swarm key, not the same one)', SWARM_KEY_FIX, {
          error: reason
        }, entry)
      )
    } else {
      findings.push(
        fail(
          'bootstrap.libp2p',
          `libp2p handshake failed after TCP connected: ${reason}`,
          "check that the port is the peer's P2P port (CACHE_P2P_PORT, default 9000), not its HTTP port, and that both nodes run p2p-cache",
          { error: reason },
          entry
        )
      )
    }
    return result
  }
  const actual = connection.remotePeer.toString()
  if (expected !== '' && actual !== expected) {
    findings.push(
      fail(
        'bootstrap.libp2p',
        `wrong peer ID: the node at this address is ${actual}, not ${expected}`,
        `use ${target.toString()}/p2p/${actual} (\`p2p-cache id\` on that host prints it); the ID changes when a sidecar starts without its CACHE_DIR (keep identity.key on a volume)`,
        { expected, actual },
        entry
      )
    )
    await connection.close().catch(() => {})
    return result
  }
  result.connection = connection
  const identity = expected !== '' ? 'peer ID matches' : `peer ${actual}, not pinned: the address has no /p2p/<id>`
  findings.push(
    ok('bootstrap.libp2p', `libp2p connected (Noise${init.swarmKey ? ', swarm key' : ''}, ${identity}) in ${ms(started)}`, {
      peerId: actual
    }, entry)
  )

  try {
    const rtt = await node.services.ping.ping(connection.remotePeer, {
      signal: AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
    })
    findings.push(ok('bootstrap.ping', `ping ${rtt} ms`, { rttMs: rtt }, entry))
  } catch (err) {
    findings.push(
      warn(
        'bootstrap.ping',
        `ping failed: ${(err as Error).message}`,
        'the peer is connected but slow or overloaded; check its load and the link',
        undefined,
        entry
      )
    )
  }

  const id = await init.identified(connection.remotePeer, { signal: AbortSignal.any([signal, AbortSignal.timeout(IDENTIFY_TIMEOUT_MS)]) })
  if (id === undefined) {
    findings.push(
      warn(
        'bootstrap.identify',
        `no identify answer within ${IDENTIFY_TIMEOUT_MS} ms`,
        'the peer is overloaded or not a p2p-cache node; run `p2p-cache diagnose` on it',
        undefined,
        entry
      )
    )
    return result
  }
  // Without /p2p/<id>: that is the throwaway probe's ID, not this node's.
  const observed = id.observedAddr?.toString().replace(/\/p2p\/[^/]+$/, '')
  if (observed !== undefined) result.observed = observed
  result.protocols = id.protocols
  const facts = { agent: id.agentVersion ?? null, protocols: id.protocols, observedAddr: observed ?? null }
  const isCache = id.protocols.includes(FETCH_PROTOCOL) && id.protocols.includes(KAD_PROTOCOL)
  if (!isCache) {
    findings.push(
      fail(
        'bootstrap.identify',
        `not a p2p-cache node: agent ${id.agentVersion ?? 'unknown'} lacks ${FETCH_PROTOCOL} and ${KAD_PROTOCOL}`,
        'point CACHE_BOOTSTRAP_PEERS at p2p-cache sidecars only (their `p2p-cache id` output)',
        facts,
        entry
      )
    )
    return result
  }
  findings.push(
    ok(
      'bootstrap.identify',
      `p2p-cache node (${id.agentVersion ?? 'unknown agent'}); it sees this node as ${observed ?? 'unknown'}`,
      facts,
      entry
    )
  )
  return result
}

interface TcpProbe {
  rttMs: number
  /** The peer sent a 24-byte pnet nonce unprompted (true), multistream or nothing (false). */
  pnet?: boolean
  error?: string
}

/** One TCP connection with its RTT; listens briefly to learn whether the peer speaks pnet first. */
async function tcpProbe (host: string, port: number, options: Required<AbortOptions>): Promise<TcpProbe> {
  const { signal } = options
  return await new Promise(resolve => {
    const started = performance.now()
    const socket = connect({ host, port, signal })
    let rttMs = 0
    let received = Buffer.alloc(0)
    const done = (out: TcpProbe): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(out)
    }
    const timer = setTimeout(() => {
      if (rttMs === 0) done({ rttMs: 0, error: 'ETIMEDOUT' })
      else done({ rttMs, pnet: received.length === 24 })
    }, TCP_TIMEOUT_MS)
    socket.once('connect', () => {
      rttMs = performance.now() - started
      clearTimeout(timer)
      // A pnet listener sends its nonce at once; a plain libp2p listener waits for the dialer.
      setTimeout(() => {
        done({ rttMs, pnet: received.length === 24 })
      }, PNET_SNIFF_MS)
    })
    socket.on('data', (chunk: Buffer) => {
      // Only the first bytes tell (a 24-byte nonce): a flood is not kept.
      if (received.length <= 24) received = Buffer.concat([received, chunk]).subarray(0, 25)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (rttMs === 0) done({ rttMs: 0, error: err.code ?? err.message })
    })
  })
}

async function withTimeout<T> (p: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          reject(Object.assign(new Error(message), { code: 'ETIMEOUT' }))
        }, timeoutMs)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

function errCode (err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message
}

function ms (started: number): string {
  return `${(performance.now() - started).toFixed(1)} ms`
}

function round (n: number): number {
  return Math.round(n * 10) / 10
}

function short (peerId: string): string {
  return peerId.length > 16 ? `${peerId.slice(0, 8)}…${peerId.slice(-6)}` : peerId
}
