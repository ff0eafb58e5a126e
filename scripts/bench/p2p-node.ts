/**
 * A sidecar with the peer-to-peer layer on, for the P2P bench rows: the bench's own variant of
 * test/fixtures/sidecar-process.ts (which defaults CACHE_ENABLE_P2P to false and logs at debug).
 *
 * Every node listens on loopback only: HTTP on 127.0.0.1:<free port>, libp2p on
 * /ip4/127.0.0.1/tcp/<free port> (never the 0.0.0.0:9000 default), and its only upstream is
 * the bench's registry fixture.
 */
import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { spawnManaged, type ManagedProcess } from '../../test/fixtures/child.js'
import { freePort } from '../../test/fixtures/ports.js'
import { CLI, cliNodeFlags } from '../../test/fixtures/sidecar-process.js'
import { httpStatus, waitFor } from '../../test/fixtures/wait.js'
import { requestJson } from './http-client.js'

export interface PeerInfo {
  peerId: string
  addrs: string[]
}
export interface P2pInfo extends PeerInfo {
  peers: PeerInfo[]
  /** Peers in the DHT routing table; undefined when /api/p2p does not say. */
  routingTable: number | undefined
}

export interface P2pNode {
  name: string
  url: string
  pid: number
  dir: string
  proc: ManagedProcess
  peerId: string
  /** The node's loopback TCP multiaddr, ending in /p2p/<peerId>: what others bootstrap to. */
  dialAddr: string
  /** Process start → /readyz 200 and /api/p2p answering, milliseconds. */
  startMs: number
  info: () => Promise<P2pInfo>
  stats: () => Promise<Record<string, number>>
  /** Log lines at warn level or above (pino JSON level >= 40), the last 100. */
  warnings: () => string[]
  /** `claimMs` of each 'claim won' log line (info level): how long deciding a miss took. */
  claimsWonMs: () => number[]
  stop: () => Promise<void>
}

export interface P2pNodeOptions {
  /** Parent directory; the node's own dir `<root>/<name>` is created and removed on stop. */
  root: string
  name: string
  /** CACHE_REGISTRY_UPSTREAMS, e.g. `127.0.0.1:5000=http://127.0.0.1:5000`. */
  upstreams: string
  bootstrap: string[]
  /** The libp2p port on 127.0.0.1 (default: a free one); set it when the address must be known
   *  before the node starts, e.g. for an identity made with `p2p-cache id` in `<root>/<name>`. */
  p2pPort?: number
  /** Extra CACHE_* variables (override the defaults here). */
  env?: NodeJS.ProcessEnv
  /** Extra node flags before the CLI path, e.g. --cpu-prof for a profile of the node. */
  nodeArgs?: string[]
  /** Every line the sidecar logs is appended to this file too (its level: env CACHE_LOG_LEVEL). */
  logFile?: string
  /** Log lines kept for proc.tail() (default 50). */
  tailSize?: number
  readyTimeoutMs?: number
}

function isPeerInfo (x: unknown): x is PeerInfo {
  if (typeof x !== 'object' || x === null) return false
  const o = x as Record<string, unknown>
  return typeof o['peerId'] === 'string' && Array.isArray(o['addrs'])
}

export async function p2pInfo (url: string, timeoutMs = 5_000): Promise<P2pInfo> {
  const body = await requestJson('GET', `${url}/api/p2p`, timeoutMs)
  if (!isPeerInfo(body)) throw new Error(`GET ${url}/api/p2p: unexpected answer ${JSON.stringify(body)?.slice(0, 200) ?? ''}`)
  const o = body as unknown as Record<string, unknown>
  const peers = Array.isArray(o['peers']) ? (o['peers'] as unknown[]).filter(isPeerInfo) : []
  const rt = o['routingTable']
  return { peerId: body.peerId, addrs: body.addrs.map(String), peers, routingTable: typeof rt === 'number' ? rt : undefined }
}

/**
 * Node flags for a bench sidecar: with BENCH_CPU_PROF_DIR=<dir>, every sidecar writes a V8 CPU
 * profile there when it stops (to see where a herd's CPU goes); else none.
 */
export function cpuProfileArgs (): string[] {
  const dir = process.env.BENCH_CPU_PROF_DIR
  return dir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`]
}

/** The loopback TCP address among `addrs`, with /p2p/<peerId> appended when missing. */
export function loopbackDialAddr (info: PeerInfo): string {
  const tcp = info.addrs.find(a => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? info.addrs.find(a => a.includes('/tcp/'))
  if (tcp === undefined) throw new Error(`peer ${info.peerId} announces no TCP address: ${info.addrs.join(' ')}`)
  return tcp.includes('/p2p/') ? tcp : `${tcp}/p2p/${info.peerId}`
}

export async function startP2pNode (opts: P2pNodeOptions): Promise<P2pNode> {
  const dir = join(opts.root, opts.name)
  await mkdir(dir, { recursive: true })
  const [httpPort, p2pPort] = await Promise.all([freePort(), opts.p2pPort ?? freePort()])
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    CACHE_DIR: join(dir, 'data'),
    CACHE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    CACHE_ENABLE_P2P: 'true',
    CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${p2pPort}`,
    CACHE_REGISTRY_UPSTREAMS: opts.upstreams,
    CACHE_LOG_LEVEL: 'warn',
    CACHE_PEER_LOOKUP_TIMEOUT: '2s',
    CACHE_MAX_SIZE: '20GB',
    ...(opts.bootstrap.length > 0 ? { CACHE_BOOTSTRAP_PEERS: opts.bootstrap.join(',') } : {}),
    ...opts.env
  }
  const url = `http://127.0.0.1:${httpPort}`
  const warnings: string[] = []
  const claimsWonMs: number[] = []
  const started = performance.now()
  const logFile = opts.logFile === undefined ? undefined : createWriteStream(opts.logFile, { flags: 'a' })
  const proc = spawnManaged(process.execPath, [...cliNodeFlags(), ...cpuProfileArgs(), ...(opts.nodeArgs ?? []), CLI, 'serve'], {
    env,
    tailSize: opts.tailSize ?? 50,
    onLine: line => {
      logFile?.write(line + '\n')
      const claim = /"claimMs":([\d.]+),"msg":"claim won"/.exec(line)
      if (claim !== null) claimsWonMs.push(Number(claim[1]))
      const m = /"level":(\d+)/.exec(line)
      if (m !== null && Number(m[1]) >= 40) {
        warnings.push(line.length > 600 ? `${line.slice(0, 600)}...` : line)
        if (warnings.length > 100) warnings.shift()
      }
    }
  })
  const stop = async (): Promise<void> => {
    await proc.stop(5_000)
    logFile?.end()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const info = await waitFor(async () => {
      if (!proc.isRunning()) throw new Error(`sidecar ${opts.name} exited: ${proc.tail(20)}`)
      if ((await httpStatus(`${url}/readyz`, 2_000)) !== 200) return undefined
      return await p2pInfo(url, 2_000)
    }, {
      timeoutMs: opts.readyTimeoutMs ?? 30_000,
      intervalMs: 25,
      what: `P2P sidecar ${opts.name} ready at ${url} (/readyz and /api/p2p)`
    })
    const startMs = performance.now() - started
    const pid = proc.child.pid
    if (pid === undefined) throw new Error(`sidecar ${opts.name} has no pid`)
    return {
      name: opts.name,
      url,
      pid,
      dir,
      proc,
      peerId: info.peerId,
      dialAddr: loopbackDialAddr(info),
      startMs,
      info: () => p2pInfo(url),
      // 30 s: 50 sidecars on 2 cores answer late (as the netns fixture's stats()).
      stats: async () => await requestJson('GET', `${url}/api/cache/stats`, 30_000) as Record<string, number>,
      warnings: () => warnings.slice(),
      claimsWonMs: () => claimsWonMs.slice(),
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Starts `count` nodes, `batch` at a time (start-up is CPU-bound: ~0.5 s of a core each). */
export async function startP2pNodes (
  count: number,
  batch: number,
  make: (i: number) => P2pNodeOptions,
  onStarted: (node: P2pNode) => void
): Promise<P2pNode[]> {
  const nodes: P2pNode[] = []
  for (let first = 0; first < count; first += batch) {
    const ids = Array.from({ length: Math.min(batch, count - first) }, (_, k) => first + k)
    const settled = await Promise.allSettled(ids.map(async i => {
      const node = await startP2pNode(make(i))
      onStarted(node)
      return node
    }))
    for (const s of settled) {
      if (s.status === 'rejected') throw s.reason
      nodes.push(s.value)
    }
  }
  return nodes
}
