import { generateKeyPair } from '@libp2p/crypto/keys'
import type { AbortOptions, IdentifyResult, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Config } from '../config/options.js'
import { createP2pNode, type P2pNode } from '../p2p/node.js'
import { announcedAddrs, checkAnnounce, reachableAddrs } from './announce.js'
import { checkDialback } from './dialback.js'
import { checkBootstrapPeer, type BootstrapResult } from './bootstrap.js'
import { checkDht } from './dht.js'
import { environmentFindings, networkFacts } from './environment.js'
import { skip, warn, type Finding } from './finding.js'
import { checkListen } from './listen.js'
import { findSidecar, liveFindings } from './live.js'
import { checkStorage } from './storage.js'
import { checkProxy } from './proxy.js'
import { checkActionsCache } from './actions-cache.js'
import { checkBucket } from './bucket.js'
import { checkClock, checkUpstreams } from './upstreams.js'
import { checkFleetCredentials } from './fleet.js'
import { checkContainerd, checkDocker, DEFAULT_CONTAINERD_HOSTS, defaultDockerHost } from './clients.js'
import { loadFleetCredentials } from '../upstream/fleet-credential.js'
import { REPORT_SCHEMA, verdictOf, type Report } from './report.js'
import { VERSION } from '../version/version.js'
import { sidecarUrlFor } from '../http/sidecar-url.js'

export interface DiagnoseOptions {
  /** Bootstrap addresses to check instead of CACHE_BOOTSTRAP_PEERS (as given: malformed ones are findings). */
  bootstrap?: string[]
  /** A running sidecar's URL; default: the one CACHE_HTTP_ADDR names, if it answers. */
  http?: string
  /** The Docker engine to ask for its mirrors; default DOCKER_HOST, else /var/run/docker.sock. */
  dockerHost?: string
  /** containerd's hosts directory; default /etc/containerd/certs.d. */
  containerdHosts?: string
  /**
   * `reachability`: only what says whether peers can reach this node and it them (this host's
   * network, the listen addresses, bootstrap peers, announced addresses, dial-back, the DHT, the
   * running sidecar's view); the status page runs that. Default `all`.
   */
  scope?: 'all' | 'reachability'
  signal?: AbortSignal
}

/** Runs every check once, in the order a user would debug: this host, this node, its peers, the DHT, the sidecar. */
export async function diagnose (config: Config, opts: DiagnoseOptions = {}): Promise<Report> {
  const started = Date.now()
  const signal = opts.signal ?? new AbortController().signal
  // A GitHub App key that can't be read is bad input: said before any check runs.
  const fleet = loadFleetCredentials(config.apiUpstreams, config.apiAuth, config.apiApp)
  const findings: Finding[] = []
  const network = await networkFacts()
  findings.push(...environmentFindings(network))

  const httpUrl = opts.http ?? sidecarUrlFor(config.httpAddr)
  const live = await findSidecar(httpUrl)
  findings.push(...await checkListen(config.listenAddrs, config.httpAddr, config.p2pDataPort, live))

  const entries = opts.bootstrap ?? config.bootstrapPeers.map(String)
  const peers: BootstrapResult[] = []
  let probe: P2pNode | undefined
  try {
    if (config.enableP2p || opts.bootstrap !== undefined) {
      const started = await startProbe(config, live !== undefined && live.p2p !== undefined)
      probe = started.node
      const identified = identifyWaiter(probe)
      for (const entry of entries) {
        const result = await checkBootstrapPeer(entry, { node: probe, swarmKey: config.swarmKey !== undefined, identified, signal })
        peers.push(result)
        findings.push(...result.findings)
      }
      if (entries.length === 0) {
        findings.push(
          warn(
            'bootstrap.address',
            'no bootstrap peers: fine for the first node of a swarm, which others bootstrap to; any other node stays alone',
            'give every runner but the first CACHE_BOOTSTRAP_PEERS=<`p2p-cache id` of a sidecar on another host> (or pass --bootstrap to check one)'
          )
        )
      }
      findings.push(...checkAnnounce({ listen: config.listenAddrs, announce: config.announceAddrs, network, peers }))
      // Who answers at the announced addresses: the running sidecar, or the probe if it took the port.
      const target = live?.p2p?.peerId ?? (started.onConfiguredPort ? probe.peerId.toString() : undefined)
      findings.push(
        ...await checkDialback({
          announced: reachableAddrs(announcedAddrs(config.listenAddrs, config.announceAddrs)),
          peers,
          target,
          networkMode: network.mode,
          signal
        })
      )
      const connections = peers.flatMap(p => p.connection !== undefined ? [p.connection] : [])
      findings.push(
        ...await checkDht({ probe, connections, finderKey: await generateKeyPair('Ed25519'), swarmKey: config.swarmKey, signal })
      )
    } else {
      findings.push(
        skip(
          'bootstrap.address',
          'the peer-to-peer layer is off (CACHE_ENABLE_P2P=false): no peer checks (pass --bootstrap to check one anyway)'
        )
      )
    }
  } finally {
    await Promise.resolve(probe?.stop()).catch(() => {})
  }

  findings.push(...liveFindings(httpUrl, live, opts.http !== undefined, entries.length > 0))
  if (opts.scope === 'reachability') {
    return report(started, findings, peers.some(p => p.malformed) && opts.bootstrap !== undefined, probe, live, network)
  }
  // The clients of this host: is the sidecar their mirror, and have they reached it?
  findings.push(await checkDocker(opts.dockerHost ?? defaultDockerHost(), httpUrl, live?.clients))
  findings.push(await checkContainerd(opts.containerdHosts ?? DEFAULT_CONTAINERD_HOSTS, httpUrl, live?.clients))
  findings.push(...await checkProxy(config, live?.stats))
  findings.push(...await checkActionsCache(config, httpUrl, live?.stats))
  findings.push(...await checkBucket(config, live?.stats))
  const upstreams = await checkUpstreams(config.registryUpstreams, config.apiUpstreams)
  findings.push(...upstreams.findings)
  findings.push(...await checkFleetCredentials(config.apiUpstreams, fleet))
  const storedBytes = typeof live?.stats?.current_size === 'number' ? live.stats.current_size : undefined
  findings.push(...await checkStorage(config.dir, config.maxSize, storedBytes))
  findings.push(checkClock(upstreams.dates))

  return report(started, findings, peers.some(p => p.malformed) && opts.bootstrap !== undefined, probe, live, network)
}

function report (
  started: number,
  findings: Finding[],
  unusable: boolean,
  probe: P2pNode | undefined,
  live: Awaited<ReturnType<typeof findSidecar>>,
  network: Awaited<ReturnType<typeof networkFacts>>
): Report {
  const { verdict, exitCode, counts } = verdictOf(findings, unusable)
  return {
    schema: REPORT_SCHEMA,
    version: VERSION,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    probePeerId: probe?.peerId.toString() ?? null,
    sidecar: live?.url ?? null,
    network: { mode: network.mode, container: network.container.length > 0 },
    verdict,
    exitCode,
    counts,
    findings
  }
}

/**
 * A throwaway node with the sidecar's settings (swarm key, DHT protocol) but its own identity,
 * so it never impersonates the running sidecar. It listens where the sidecar would when that
 * port is free (peers then observe and could dial the real address), else on a random port.
 */
async function startProbe (config: Config, sidecarRunning: boolean): Promise<{ node: P2pNode, onConfiguredPort: boolean }> {
  const privateKey = await generateKeyPair('Ed25519')
  const base = { privateKey, bootstrap: [], mdns: false, swarmKey: config.swarmKey }
  if (!sidecarRunning) {
    try {
      return { node: await createP2pNode({ ...base, listen: config.listenAddrs, announce: config.announceAddrs }), onConfiguredPort: true }
    } catch {
      // The port is taken by something else: the listen check reports it; probe from anywhere.
    }
  }
  return { node: await createP2pNode({ ...base, listen: [multiaddr('/ip4/0.0.0.0/tcp/0')], announce: [] }), onConfiguredPort: false }
}

/** Identify runs on every new connection; resolves with its result for `peer` (or undefined when aborted). */
function identifyWaiter (node: P2pNode): (peer: PeerId, options: Required<AbortOptions>) => Promise<IdentifyResult | undefined> {
  const results = new Map<string, IdentifyResult>()
  node.addEventListener('peer:identify', evt => {
    results.set(evt.detail.peerId.toString(), evt.detail)
  })
  return async (peer, { signal }) => {
    while (!signal.aborted) {
      const found = results.get(peer.toString())
      if (found !== undefined) return found
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    return results.get(peer.toString())
  }
}
