import type { Multiaddr } from '@multiformats/multiaddr'
import { multiaddr } from '@multiformats/multiaddr'
import { dialableAddrs } from '../p2p/addresses.js'
import type { BootstrapResult } from './bootstrap.js'
import type { NetworkFacts } from './environment.js'
import { fail, ok, warn, type Finding } from './finding.js'
import { inSubnet, isLoopback } from './ip.js'

export interface AnnounceInput {
  listen: Multiaddr[]
  announce: Multiaddr[]
  network: NetworkFacts
  peers: BootstrapResult[]
}

/** An address this node announces, without /p2p/<id>. */
export interface AnnouncedAddr {
  host: string
  port: number
  text: string
}

function hostPort (ma: string): AnnouncedAddr | undefined {
  const [host, tcp] = multiaddr(ma).getComponents()
  if (host === undefined || tcp === undefined) return undefined
  return { host: host.value ?? '', port: Number(tcp.value), text: ma.replace(/\/p2p\/[^/]+$/, '') }
}

/**
 * What this node tells peers to dial, against what they can reach: loopback or a container's
 * bridge address announced to other hosts, an address that differs from the one peers observe
 * (NAT), an announced port that is not the one listened on.
 */
export function checkAnnounce (input: AnnounceInput): Finding[] {
  const explicit = input.announce.length > 0
  const listenPort = Number(input.listen[0]?.getComponents()[1]?.value ?? '9000')
  const addrs = announcedAddrs(input.listen, input.announce)
  const usable = reachableAddrs(addrs)
  const remotePeers = input.peers.filter(p => p.host !== undefined && !isLoopback(p.host))
  const observed = [
    ...new Set(remotePeers.map(p => p.observed).filter((o): o is string => o !== undefined).map(o => hostPort(o)?.host ?? ''))
  ].filter(Boolean)
  const hostIp = observed[0] ?? '<host-ip>'
  const publishFix =
    `run the sidecar with \`--network host\`, or publish the port and announce the host's address: \`-p ${listenPort}:${listenPort} -e CACHE_ANNOUNCE_ADDRS=/ip4/${hostIp}/tcp/${listenPort}\``
  const facts = { announced: addrs.map(a => a.text), explicit, observed, listenPort }
  const source = explicit ? 'CACHE_ANNOUNCE_ADDRS' : 'the listen addresses'

  if (usable.length === 0) {
    if (remotePeers.length > 0 || input.peers.length === 0) {
      const finding = remotePeers.length > 0 ? fail : warn
      return [
        finding(
          'announce.addresses',
          `only loopback is announced (${addrs.map(a => a.text).join(', ') || 'nothing'}): peers on other hosts can't dial this node`,
          `listen on all interfaces (CACHE_LISTEN_ADDRS=/ip4/0.0.0.0/tcp/${listenPort}) or announce a reachable address: CACHE_ANNOUNCE_ADDRS=/ip4/${hostIp}/tcp/${listenPort}`,
          facts
        )
      ]
    }
    return [ok('announce.addresses', `announces ${addrs.map(a => a.text).join(', ')}; every bootstrap peer is on this host`, facts)]
  }

  if (input.network.mode === 'bridge') {
    const routed = input.network.interfaces.find(i => i.name === input.network.defaultInterface && i.family === 'IPv4')
    const privateOnes = usable.filter(a => routed !== undefined && inSubnet(a.host, routed.cidr))
    if (privateOnes.length === usable.length) {
      return [
        fail(
          'announce.addresses',
          `announces ${privateOnes.map(a => a.text).join(', ')}, the container's address on its bridge network (${
            routed?.cidr ?? ''
          }); other hosts can't dial it${observed.length > 0 ? ` (peers see this node as ${observed.join(', ')})` : ''}`,
          publishFix,
          facts
        )
      ]
    }
  }

  const usableIps = new Set(usable.map(a => a.host))
  const natted = observed.filter(ip => !usableIps.has(ip))
  if (natted.length > 0 && natted.length === observed.length) {
    return [
      warn(
        'announce.addresses',
        `peers see this node as ${natted.join(', ')}, which it does not announce (${
          usable.map(a => a.text).join(', ')
        }): there is NAT between them`,
        `if ${natted[0] ?? ''} is this host's address and the port is forwarded, announce it: CACHE_ANNOUNCE_ADDRS=/ip4/${
          natted[0] ?? ''
        }/tcp/${listenPort}; otherwise put the nodes on a network without NAT (\`--network host\`)`,
        facts
      )
    ]
  }
  const otherPorts = usable.filter(a => a.port !== listenPort)
  if (explicit && otherPorts.length > 0 && input.network.mode !== 'bridge') {
    return [
      warn(
        'announce.addresses',
        `announces port ${
          otherPorts.map(a => a.port).join(', ')
        } but listens on ${listenPort}: peers can dial it only through a port forward`,
        `announce the port it listens on (CACHE_ANNOUNCE_ADDRS=/ip4/${
          otherPorts[0]?.host ?? hostIp
        }/tcp/${listenPort}), or publish it: \`-p ${otherPorts[0]?.port ?? listenPort}:${listenPort}\``,
        facts
      )
    ]
  }
  const seen = observed.length > 0 ? `; peers see this node as ${observed.join(', ')}` : ''
  return [ok('announce.addresses', `announces ${usable.map(a => a.text).join(', ')} (from ${source})${seen}`, facts)]
}

/** What this node tells peers to dial: CACHE_ANNOUNCE_ADDRS, else the listen addresses on every interface. */
export function announcedAddrs (listen: Multiaddr[], announce: Multiaddr[]): AnnouncedAddr[] {
  return dialableAddrs(listen, announce, 'self').map(hostPort).filter((a): a is AnnouncedAddr => a !== undefined)
}

/** The announced addresses another host could use at all (not loopback, not link-local). */
export function reachableAddrs (addrs: AnnouncedAddr[]): AnnouncedAddr[] {
  return addrs.filter(a => !isLoopback(a.host) && !a.host.startsWith('fe80'))
}
