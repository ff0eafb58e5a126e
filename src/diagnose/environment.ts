import { readFile, readdir, access } from 'node:fs/promises'
import { networkInterfaces } from 'node:os'
import { ok, warn, type Finding } from './finding.js'
import { inSubnet, isLoopback } from './ip.js'

export interface InterfaceAddr {
  name: string
  address: string
  cidr: string
  family: 'IPv4' | 'IPv6'
}

export interface NetworkFacts {
  /** What suggests a container: `/.dockerenv`, a container cgroup, an overlay root. */
  container: string[]
  interfaces: InterfaceAddr[]
  /** Bridge devices visible here (docker0, br-…): only a host (or host-networked container) sees them. */
  bridges: string[]
  defaultGateway: string | undefined
  defaultInterface: string | undefined
  mode: 'host' | 'bridge' | 'unknown'
  /** Why `mode` was decided. */
  reason: string
}

/** Docker's default bridge, and the pools it takes user-defined networks from (172.17–31.x, 192.168.x). */
const DOCKER_DEFAULT_BRIDGE = '172.17.0.0/16'
const DOCKER_POOLS = ['172.16.0.0/12', '192.168.0.0/16']

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

async function readText (path: string): Promise<string> {
  return await readFile(path, 'utf8').catch(() => '')
}

async function containerEvidence (): Promise<string[]> {
  const out: string[] = []
  if (await exists('/.dockerenv')) out.push('/.dockerenv exists')
  if (await exists('/run/.containerenv')) out.push('/run/.containerenv exists (podman)')
  const cgroup = await readText('/proc/1/cgroup')
  const runtime = /(docker|containerd|kubepods|libpod|lxc)/.exec(cgroup)
  if (runtime !== null) out.push(`/proc/1/cgroup names ${runtime[1]}`)
  const mounts = await readText('/proc/self/mountinfo')
  if (/ \/ \/ [^\n]* - overlay /.test(mounts)) out.push('the root filesystem is an overlay mount')
  return out
}

/** The IPv4 default route from /proc/net/route (gateway and interface), if any. */
async function defaultRoute (): Promise<{ gateway: string, iface: string } | undefined> {
  for (const line of (await readText('/proc/net/route')).split('\n').slice(1)) {
    const [iface, destination, gateway, , , , , mask] = line.trim().split(/\s+/)
    if (iface === undefined || destination !== '00000000' || mask !== '00000000' || gateway === undefined) continue
    // Little-endian hex: 0100A8C0 is 192.168.0.1.
    const n = Number.parseInt(gateway, 16)
    return { iface, gateway: [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.') }
  }
  return undefined
}

async function bridgeDevices (): Promise<string[]> {
  const names = await readdir('/sys/class/net').catch(() => [] as string[])
  const out: string[] = []
  for (const name of names) if (await exists(`/sys/class/net/${name}/bridge`)) out.push(name)
  return out.sort()
}

export async function networkFacts (): Promise<NetworkFacts> {
  const interfaces: InterfaceAddr[] = Object.entries(networkInterfaces()).flatMap(([name, list]) =>
    (list ?? []).map(i => ({ name, address: i.address, cidr: i.cidr ?? i.address, family: i.family }))
  )
  const [container, bridges, route] = await Promise.all([containerEvidence(), bridgeDevices(), defaultRoute()])
  const facts = { container, interfaces, bridges, defaultGateway: route?.gateway, defaultInterface: route?.iface }
  return { ...facts, ...classifyNetwork(facts) }
}

/**
 * The network mode (`host`, `bridge`, `unknown`) and why, from what `networkFacts` observed:
 * container evidence, interfaces, bridge devices and the IPv4 default route. Pure.
 */
export function classifyNetwork (facts: Omit<NetworkFacts, 'mode' | 'reason'>): Pick<NetworkFacts, 'mode' | 'reason'> {
  const { container, interfaces, bridges } = facts
  const route = facts.defaultGateway === undefined || facts.defaultInterface === undefined
    ? undefined
    : { gateway: facts.defaultGateway, iface: facts.defaultInterface }
  const routed = route === undefined ? undefined : interfaces.find(i => i.name === route.iface && i.family === 'IPv4')
  // Inside a bridge-networked container: the default route leaves through a veth whose address
  // is in Docker's pools, the gateway is the bridge on the host, and no bridge device is visible.
  // Without container evidence only Docker's default bridge counts: many LANs use 192.168.x.
  const pools = container.length > 0 ? DOCKER_POOLS : [DOCKER_DEFAULT_BRIDGE]
  if (
    route !== undefined && routed !== undefined && bridges.length === 0 && pools.some(p => inSubnet(routed.address, p)) &&
    inSubnet(route.gateway, routed.cidr)
  ) {
    return {
      mode: 'bridge',
      reason:
        `the default route goes via ${route.gateway} on ${route.iface} (${routed.cidr}), a container bridge network, and no bridge device is visible`
    }
  }
  if (bridges.length > 0) {
    return { mode: 'host', reason: `bridge devices are visible (${bridges.join(', ')}): this is the host's network stack` }
  }
  if (container.length === 0) {
    return {
      mode: 'host',
      reason: route === undefined
        ? 'no container evidence and no default route'
        : `no container evidence; the default route goes via ${route.gateway} on ${route.iface}`
    }
  }
  const external = interfaces.filter(i => !isLoopback(i.address) && i.family === 'IPv4')
  return {
    mode: external.length === 0 ? 'unknown' : 'host',
    reason: external.length === 0
      ? 'in a container with no network interface but loopback (--network none?)'
      : 'in a container whose interfaces are not on a container bridge network (likely --network host)'
  }
}

export function environmentFindings (facts: NetworkFacts): Finding[] {
  const inContainer = facts.container.length > 0
  const where = inContainer
    ? `in a container (${facts.container.join('; ')})`
    : 'not in a container (no /.dockerenv, no container cgroup, no overlay root)'
  const addrs = facts.interfaces.filter(i => !isLoopback(i.address) && !i.address.startsWith('fe80')).map(i => `${i.name} ${i.cidr}`)
  const out: Finding[] = [ok('environment.container', where, { evidence: facts.container })]
  const networkFacts = {
    mode: facts.mode,
    reason: facts.reason,
    defaultGateway: facts.defaultGateway ?? null,
    defaultInterface: facts.defaultInterface ?? null,
    bridges: facts.bridges,
    addresses: addrs
  }
  if (facts.mode === 'bridge') {
    // A fact, not a fault: whether peers can reach this node is the announce check's verdict.
    out.push(
      ok(
        'environment.network',
        `bridge network: ${facts.reason}; peers on other hosts need a published port and CACHE_ANNOUNCE_ADDRS (see announce.addresses)`,
        networkFacts
      )
    )
  } else if (facts.mode === 'unknown') {
    out.push(
      warn(
        'environment.network',
        `no network: ${facts.reason}`,
        'give the container a network: `--network host` (or a bridge with `-p 9000:9000`)',
        networkFacts
      )
    )
  } else {
    out.push(ok('environment.network', `host network: ${facts.reason}; addresses ${addrs.join(', ') || 'none but loopback'}`, networkFacts))
  }
  return out
}
