/**
 * Three sidecars as separate `p2p-cache serve` processes, all on 127.0.0.1: HTTP, libp2p and the
 * data channel (libp2p's port + 1, or any free one) on free ports, each with its own CACHE_DIR,
 * P2P on: no default port (9080, 9000, 9001) is used, so the demo runs beside the quickstart's
 * `npm start`. Each node's identity is made first with
 * `p2p-cache id --json`, so all three share one CACHE_BOOTSTRAP_PEERS list (a node skips its own
 * entry), as runners do, and start at once.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort } from '../../test/fixtures/ports.js'
import { runCli, startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { p2pInfo, waitForPeers } from '../../test/fixtures/swarm.js'
import { waitFor } from '../../test/fixtures/wait.js'

export interface DemoNode {
  name: string
  sidecar: SidecarProcess
  peerId: string
  /** `/ip4/127.0.0.1/tcp/<port>/p2p/<peerId>`: this node's entry in the shared bootstrap list. */
  p2pAddr: string
  pid: number
}

interface Identity {
  name: string
  dir: string
  listen: string
  /** The HTTP port `serve` will listen on: `id` is given the same CACHE_HTTP_ADDR. */
  httpPort: number
  peerId: string
  p2pAddr: string
}

/** `p2p-cache id --json` on the node's CACHE_DIR: creates the identity, prints its dialable address. */
async function identity (root: string, name: string): Promise<Identity> {
  const dir = join(root, name)
  await mkdir(dir, { recursive: true })
  const port = await freePort()
  const httpPort = await freePort()
  const listen = `/ip4/127.0.0.1/tcp/${port}`
  // The same CACHE_DIR and CACHE_HTTP_ADDR startSidecar gives `serve` (<dir>/data), so serve
  // finds this identity. Without CACHE_HTTP_ADDR, `id` would ask a sidecar on the default
  // 127.0.0.1:9080 (the quickstart's `npm start`) who it is, and refuse to make a new identity.
  const res = await runCli(['id', '--json'], {
    HOME: dir,
    CACHE_DIR: join(dir, 'data'),
    CACHE_LISTEN_ADDRS: listen,
    CACHE_HTTP_ADDR: `127.0.0.1:${httpPort}`
  })
  if (res.code !== 0) throw new Error(`p2p-cache id --json for sidecar ${name} exited ${res.code}: ${res.stderr.trim()}`)
  const out = JSON.parse(res.stdout) as { peerId?: unknown, addrs?: unknown }
  const addrs = Array.isArray(out.addrs) ? out.addrs.filter((a): a is string => typeof a === 'string') : []
  const p2pAddr = addrs.find(a => a.startsWith(`${listen}/p2p/`))
  if (typeof out.peerId !== 'string' || p2pAddr === undefined) {
    throw new Error(`p2p-cache id --json for sidecar ${name} printed no ${listen}/p2p/<id> address: ${res.stdout.trim()}`)
  }
  return { name, dir, listen, httpPort, peerId: out.peerId, p2pAddr }
}

export interface StartNodesOptions {
  root: string
  names: string[]
  /** CACHE_REGISTRY_UPSTREAMS */
  upstreams: string
  /** Each started node, as soon as it is (so the caller can register its teardown). */
  onStarted: (node: DemoNode) => void
}

export async function startNodes (opts: StartNodesOptions): Promise<DemoNode[]> {
  const ids = await Promise.all(opts.names.map(async name => await identity(opts.root, name)))
  const bootstrap = ids.map(i => i.p2pAddr).join(',')
  return await Promise.all(ids.map(async id => {
    const sidecar = await startSidecar(
      {
        CACHE_ENABLE_P2P: 'true',
        CACHE_LISTEN_ADDRS: id.listen,
        CACHE_BOOTSTRAP_PEERS: bootstrap,
        CACHE_REGISTRY_UPSTREAMS: opts.upstreams,
        // Default 1s. Four processes and skopeo on a small, busy machine can take longer to find a
        // provider, and the demo would show an upstream fetch that a quiet machine never makes.
        CACHE_PEER_LOOKUP_TIMEOUT: '5s',
        // debug: the announcer's 'announced' records are the evidence that a node's blobs can be found.
        CACHE_LOG_LEVEL: 'debug'
      },
      { dir: id.dir, port: id.httpPort }
    )
    const pid = sidecar.proc.child.pid ?? -1
    const node: DemoNode = { name: id.name, sidecar, peerId: id.peerId, p2pAddr: id.p2pAddr, pid }
    opts.onStarted(node)
    const info = await p2pInfo(sidecar.url)
    if (info.peerId !== id.peerId) throw new Error(`sidecar ${id.name} runs as ${info.peerId}, but p2p-cache id said ${id.peerId}`)
    return node
  }))
}

/**
 * Every node connected to the other two and has them in its DHT routing table (a lookup needs
 * the table, not just the connection).
 */
export async function waitForMesh (nodes: DemoNode[], timeoutMs: number): Promise<void> {
  const others = nodes.length - 1
  await Promise.all(nodes.map(async n => {
    await waitForPeers(n.sidecar, others, timeoutMs)
    await waitFor(async () => {
      return (await p2pInfo(n.sidecar.url)).routingTable >= others
    }, { timeoutMs, intervalMs: 100, what: `sidecar ${n.name} to have ${others} peers in its DHT routing table` })
  }))
}
