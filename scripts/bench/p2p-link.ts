/**
 * The "link" rows of `npm run bench`: a peer transfer of a large blob A -> B between two emulated
 * hosts, each in its own network namespace on one bridge, every link shaped to 1 Gbit both ways
 * with tc tbf (test/fixtures/shaped-lan.ts). Where the per-host link, not this machine's loopback
 * and CPU, is the limit, a peer transfer (libp2p for the request, the data channel on
 * CACHE_P2P_DATA_PORT for the bytes) should come close to what plain HTTP gets over that link.
 *
 *   - the registry (docker-registry, serving the bench registry's storage) runs in A's namespace,
 *     on A's LAN address; sidecar A fetches the blob from it (X-Cache: MISS), commits and
 *     announces it; sidecar B, bootstrapped to A, fetches it from A;
 *   - each timed run clears B's store (DELETE /api/cache), then one GET through B from a curl
 *     inside B's namespace, piped to sha256sum (the digest is checked). Only runs answered
 *     X-Cache: PEER with no upstream GET of the blob count; others are reported;
 *   - baseline, in the same run, interleaved (order alternating): the same bytes from a plain
 *     node:http file server in A's namespace, fetched by the same curl | sha256sum from B's;
 *   - B's bytes_from_peers_data_channel / bytes_from_peers over the timed runs go into the note:
 *     whether the data channel carried the bytes.
 *
 * Skipped (with the reason logged, in the samples and as a row) where network namespaces or
 * tc tbf can't be used (not root, no iproute2, no sch_tbf). Everything it makes (namespaces and
 * the processes inside, directories, the blob file) is removed when it ends, however it ends.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { ManagedProcess } from '../../test/fixtures/child.js'
import { Netns, netnsUnavailable, run } from '../../test/fixtures/netns.js'
import { startRegistry, type Registry } from '../../test/fixtures/registry.js'
import { buildShapedLan, type ShapedHost } from '../../test/fixtures/shaped-lan.js'
import { startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { warnLines } from '../../test/fixtures/swarm.js'
import { waitFor } from '../../test/fixtures/wait.js'
import { withSectionCleanup } from './cleanup.js'
import { randomBlobFile, spread } from './common.js'
import { uploadBlob } from './http-client.js'
import { summarizeWarnings, tally, type P2pCtx } from './p2p.js'
import { median, MB, MiB, ratioOf } from './report.js'

export interface LinkConfig {
  /** The blob moved A -> B. */
  bytes: number
  /** Timed runs, each a peer transfer paired with a baseline transfer. */
  runs: number
  /** tc rate of every link (both ways), and the same in Mbit/s for the labels. */
  rate: string
  rateMbit: number
  requestTimeoutMs: number
}

export function linkConfig (quick: boolean, requestTimeoutMs: number): LinkConfig {
  return {
    bytes: (quick ? 64 : 256) * MiB,
    runs: quick ? 3 : 5,
    rate: '1gbit',
    rateMbit: 1000,
    requestTimeoutMs
  }
}

const REPO = 'bench/link'
const SUBNET = '10.78.0'
const P2P_PORT = 9000
/** Untimed peer runs allowed before the timed ones (the first lookups may still find nobody). */
const WARM_UP_ATTEMPTS = 4

/**
 * The baseline file server, as scripts/bench/file-server.ts (plain node:http, every GET answers
 * 200 with BENCH_FILE piped from fs.createReadStream), but listening on BENCH_HOST: that source
 * binds 127.0.0.1, which B's namespace can't reach. Prints "listening <port>" once bound.
 */
const LAN_FILE_SERVER_SOURCE = `
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { pipeline } from 'node:stream/promises'

const file = process.env.BENCH_FILE
const host = process.env.BENCH_HOST
if (!file || !host) { console.error('BENCH_FILE and BENCH_HOST must be set'); process.exit(2) }

const server = createServer((req, res) => {
  (async () => {
    const { size } = await stat(file)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
    if (req.method === 'HEAD') { res.end(); return }
    await pipeline(createReadStream(file), res)
  })().catch(() => { res.destroy() })
})

server.listen(0, host, () => { console.log('listening ' + server.address().port) })

const shutdown = () => { server.close(); server.closeAllConnections(); process.exit(0) }
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
// The bench may die without stopping us (SIGKILL): once re-parented, exit.
const parent = process.ppid
setInterval(() => { if (process.ppid !== parent) shutdown() }, 1000).unref()
`

/** Why the section can't run here, or undefined: namespaces, and tc tbf on a veth in one. */
export async function linkSkipReason (): Promise<string | undefined> {
  const why = await netnsUnavailable()
  if (why !== undefined) return why
  for (const [tool, flag] of [['tc', '-V'], ['curl', '-V'], ['sha256sum', '--version'], ['bash', '--version']] as const) {
    const r = await run(tool, [flag], { timeoutMs: 5_000 })
    if (r.code !== 0) return `${tool} is not usable: ${r.stderr.trim() || `exit ${r.code}`}`
  }
  const probe = await Netns.create('p2pc-lprobe')
  try {
    const veth = await probe.run('ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'])
    if (veth.code !== 0) return `veth pairs are not available: ${veth.stderr.trim() || `exit ${veth.code}`}`
    const tbf = await probe.run('tc', ['qdisc', 'add', 'dev', 'v0', 'root', 'tbf', 'rate', '1gbit', 'burst', '256kb', 'latency', '50ms'])
    if (tbf.code !== 0) return `tc tbf is not available: ${tbf.stderr.trim() || `exit ${tbf.code}`}`
  } finally {
    await probe.destroy()
  }
  return undefined
}

/** One GET by curl inside a namespace, the body piped to sha256sum. */
interface NsGet {
  status: number
  bytes: number
  /** curl's time_total: request start to last byte. */
  seconds: number
  /** curl's time_starttransfer: request start to first byte. */
  firstByteS: number
  xCache: string
  xCacheSource: string
  digest: string
  mbps: number
}

const CURL_FORMAT =
  '%{stderr}BENCH|%{http_code}|%{size_download}|%{time_total}|%{time_starttransfer}|%header{x-cache}|%header{x-cache-source}\\n'

async function nsGet (ns: Netns, url: string, timeoutMs: number): Promise<NsGet> {
  const script = 'set -o pipefail; curl -sS --max-time "$1" -o - -w "$2" "$3" | sha256sum'
  const r = await ns.run('bash', ['-c', script, 'bench-get', String(Math.ceil(timeoutMs / 1000)), CURL_FORMAT, url], {
    timeoutMs: timeoutMs + 5_000
  })
  const line = r.stderr.split('\n').find(l => l.startsWith('BENCH|'))
  if (r.code !== 0 || line === undefined) {
    throw new Error(`curl ${url} | sha256sum in ${ns.name}: exit ${r.code}: ${r.stderr.trim().slice(0, 500)}`)
  }
  const [, status, size, total, start, xCache, xCacheSource] = line.split('|')
  const bytes = Number(size)
  const seconds = Number(total)
  return {
    status: Number(status),
    bytes,
    seconds,
    firstByteS: Number(start),
    xCache: xCache?.trim() || '-',
    xCacheSource: xCacheSource?.trim() || '-',
    digest: `sha256:${r.stdout.trim().split(/\s+/)[0] ?? ''}`,
    mbps: bytes / MB / seconds
  }
}

/** A small request with curl inside a namespace; the JSON (or empty) answer; throws on non-2xx. */
async function nsJson (ns: Netns, method: string, url: string, timeoutMs = 30_000): Promise<unknown> {
  const r = await ns.run('curl', ['-sS', '-X', method, '--max-time', String(Math.ceil(timeoutMs / 1000)), '-w', '\n%{http_code}', url], {
    timeoutMs: timeoutMs + 2_000
  })
  if (r.code !== 0) throw new Error(`curl -X ${method} ${url} in ${ns.name}: exit ${r.code} ${r.stderr.trim()}`)
  const cut = r.stdout.lastIndexOf('\n')
  const status = Number(r.stdout.slice(cut + 1))
  const body = r.stdout.slice(0, cut)
  if (status < 200 || status >= 300) throw new Error(`${method} ${url} in ${ns.name}: status ${status} ${body.slice(0, 300)}`)
  try {
    return body === '' ? undefined : JSON.parse(body) as unknown
  } catch {
    return body
  }
}

interface NsFileServer {
  url: string
  proc: ManagedProcess
}

async function startNsFileServer (host: ShapedHost, file: string, name: string): Promise<NsFileServer> {
  let port: number | undefined
  const proc = host.ns.spawn(process.execPath, ['--input-type=module', '-e', LAN_FILE_SERVER_SOURCE], {
    env: { PATH: process.env.PATH, BENCH_FILE: file, BENCH_HOST: host.ip },
    onLine: line => {
      const m = /^listening (\d+)$/.exec(line)
      if (m !== null) port = Number(m[1])
    }
  })
  try {
    const bound = await waitFor(() => {
      if (!proc.isRunning()) throw new Error(`file server in ${host.ns.name} exited: ${proc.tail(10)}`)
      return port
    }, { timeoutMs: 20_000, intervalMs: 20, what: `file server in ${host.ns.name} to listen` })
    return { url: `http://${host.ip}:${bound}/${name}`, proc }
  } catch (err) {
    await proc.stop(2_000)
    throw err
  }
}

export async function p2pLink (ctx: P2pCtx, cfg: LinkConfig): Promise<void> {
  const sizeLabel = `${cfg.bytes / MiB} MiB`
  const linkLabel = `${cfg.rateMbit >= 1000 ? `${cfg.rateMbit / 1000} Gbit` : `${cfg.rateMbit} Mbit`}`
  const metric = `peer transfer ${sizeLabel} A->B over a ${linkLabel} link (netns, tbf)`
  const linkMBps = cfg.rateMbit / 8
  const skip = await linkSkipReason()
  if (skip !== undefined) {
    ctx.log(`link: skipped: ${skip}`)
    ctx.samples['p2p_link_skipped'] = skip
    ctx.rows.push({
      metric,
      unit: 'MB/s',
      value: NaN,
      baseline: undefined,
      ratio: undefined,
      target: 'skipped',
      pass: undefined,
      digits: 0,
      note: `skipped: ${skip}`
    })
    return
  }
  await withSectionCleanup(ctx, 'P2P link', async local => {
    const { work, log } = ctx
    const t0 = performance.now()
    const blob = await randomBlobFile(work, 'link.bin', cfg.bytes)
    local.add('link blob file', () => rm(blob.path, { force: true }))
    await uploadBlob(ctx.registry.url, REPO, blob.path, blob.size, blob.digest, cfg.requestTimeoutMs)

    // Two hosts on a bridge, each link tbf-shaped both ways.
    const lan = await buildShapedLan({ names: ['la', 'lb'], subnet: SUBNET, rate: cfg.rate })
    local.add('link namespaces', lan.destroy)
    const [A, B] = lan.hosts as [ShapedHost, ShapedHost]

    // The upstream: docker-registry in A's namespace on A's address, serving what was pushed
    // to the bench's registry (only read here).
    const registry: Registry = await startRegistry({ netns: A.ns, listenHost: A.ip, dataDir: ctx.registry.dataDir })
    local.add('link registry', () => registry.destroy())
    const upstreams = `${registry.host}=${registry.url}`

    const root = join(work, `link-${randomBytes(3).toString('hex')}`)
    await mkdir(root, { recursive: true })
    local.add('link node dirs', () => rm(root, { recursive: true, force: true }))
    const nodeEnv = (host: ShapedHost, bootstrap: string[]): NodeJS.ProcessEnv => ({
      CACHE_ENABLE_P2P: 'true',
      // The data channel: CACHE_P2P_DATA_PORT auto, i.e. P2P_PORT + 1 on the same address.
      CACHE_LISTEN_ADDRS: `/ip4/${host.ip}/tcp/${P2P_PORT}`,
      ...(bootstrap.length > 0 ? { CACHE_BOOTSTRAP_PEERS: bootstrap.join(',') } : {}),
      CACHE_REGISTRY_UPSTREAMS: upstreams,
      CACHE_LOG_LEVEL: 'warn',
      CACHE_PEER_LOOKUP_TIMEOUT: '2s',
      CACHE_MAX_SIZE: '20GB'
    })
    const sidecars: SidecarProcess[] = []
    local.add('link sidecars', async () => {
      await Promise.all(sidecars.map(x => x.stop()))
    })
    await mkdir(join(root, 'A'))
    const a = await startSidecar(nodeEnv(A, []), { dir: join(root, 'A'), netns: A.ns })
    sidecars.push(a)
    const aInfo = await nsJson(A.ns, 'GET', `${a.url}/api/p2p`) as { peerId?: unknown }
    if (typeof aInfo?.peerId !== 'string') throw new Error(`A's /api/p2p names no peerId: ${JSON.stringify(aInfo)}`)
    const aId = aInfo.peerId
    await mkdir(join(root, 'B'))
    const b = await startSidecar(nodeEnv(B, [`/ip4/${A.ip}/tcp/${P2P_PORT}/p2p/${aId}`]), { dir: join(root, 'B'), netns: B.ns })
    sidecars.push(b)
    const tc = performance.now()
    await waitFor(async () => {
      const info = await nsJson(B.ns, 'GET', `${b.url}/api/p2p`) as { peers?: Array<{ peerId?: unknown }>, routingTable?: unknown }
      return (info.peers ?? []).some(p => p.peerId === aId) && (typeof info.routingTable !== 'number' || info.routingTable >= 1)
    }, { timeoutMs: 15_000, intervalMs: 50, what: `B connected to A (${aId}) over the link, A in its routing table` })
    log(
      `link: hosts A ${A.ip} and B ${B.ip} on a ${linkLabel} tbf-shaped bridge, registry ${registry.url} in A; sidecars up, B connected to A ${
        (performance.now() - tc).toFixed(0)
      } ms after start (setup ${((performance.now() - t0) / 1000).toFixed(1)} s)`
    )

    const path = `/v2/${REPO}/blobs/${blob.digest}`
    const upstreamGets = async (): Promise<number> => {
      await registry.settled()
      return registry.count({ method: 'GET', pathIncludes: `/blobs/${blob.digest}` })
    }
    const checked = (r: NsGet, what: string): NsGet => {
      if (r.status !== 200) throw new Error(`${what}: status ${r.status}`)
      if (r.bytes !== blob.size) throw new Error(`${what}: ${r.bytes} of ${blob.size} bytes`)
      if (r.digest !== blob.digest) throw new Error(`${what}: body hashes to ${r.digest}, expected ${blob.digest}`)
      return r
    }
    const stores = async (s: SidecarProcess): Promise<number> => (await s.stats())['stores'] ?? 0

    // A fetches the blob from the registry and commits it (then announces it).
    const aStores = await stores(a)
    const seed = checked(await nsGet(A.ns, `${a.url}${path}`, cfg.requestTimeoutMs), 'seed GET through A')
    if (seed.xCache !== 'MISS') throw new Error(`seed GET through A: expected X-Cache: MISS, got ${seed.xCache}`)
    await waitFor(async () => (await stores(a)) > aStores, { timeoutMs: 30_000, intervalMs: 20, what: 'A to commit the blob' })
    log(`link: A fetched the blob from the registry (X-Cache: ${seed.xCache}) at ${seed.mbps.toFixed(0)} MB/s and committed it`)

    interface PeerRun {
      r: NsGet
      upstreamGets: number
      removed: unknown
      commitWaitMs: number
    }
    /** Clears B's store, one GET through B from B's namespace; ends once B committed the blob. */
    const peerRun = async (): Promise<PeerRun> => {
      const cleared = await nsJson(B.ns, 'DELETE', `${b.url}/api/cache`) as Record<string, unknown> | undefined
      const before = await upstreamGets()
      const bStores = await stores(b)
      const r = checked(await nsGet(B.ns, `${b.url}${path}`, cfg.requestTimeoutMs), 'GET through B')
      const t = performance.now()
      await waitFor(async () => (await stores(b)) > bStores, { timeoutMs: 30_000, intervalMs: 20, what: 'B to commit the blob' })
      return { r, upstreamGets: (await upstreamGets()) - before, removed: cleared?.['removed'], commitWaitMs: performance.now() - t }
    }
    const isPeerHit = (x: PeerRun): boolean => x.r.xCache === 'PEER' && x.upstreamGets === 0
    const describe = (x: PeerRun): string =>
      `X-Cache ${x.r.xCache} from ${x.r.xCacheSource === aId ? 'A' : x.r.xCacheSource}, ${x.upstreamGets} upstream GETs`
    const fileServer = await startNsFileServer(A, blob.path, 'link.bin')
    local.add('link file server', () => fileServer.proc.stop(5_000))
    const baseRun = async (): Promise<NsGet> => checked(await nsGet(B.ns, fileServer.url, cfg.requestTimeoutMs), 'GET from the file server')

    // Untimed: B's first lookups, the data channel's first connection, page cache; one
    // baseline transfer too.
    let warm: PeerRun | undefined
    for (let attempt = 1; attempt <= WARM_UP_ATTEMPTS; attempt++) {
      warm = await peerRun()
      log(`link: warm-up ${attempt}: ${describe(warm)}, ${warm.r.mbps.toFixed(0)} MB/s`)
      if (isPeerHit(warm)) break
    }
    const warmBase = await baseRun()
    log(`link: warm-up baseline: ${warmBase.mbps.toFixed(0)} MB/s`)

    const peer: number[] = []
    const base: number[] = []
    const peerFirstByteMs: number[] = []
    const baseFirstByteMs: number[] = []
    const commitWaitMs: number[] = []
    const rejected: string[] = []
    const removed: unknown[] = []
    const sources: Record<string, number> = {}
    const statsA0 = await a.stats()
    const statsB0 = await b.stats()
    const timedPeer = async (): Promise<string> => {
      const x = await peerRun()
      removed.push(x.removed)
      if (!isPeerHit(x)) {
        rejected.push(describe(x))
        return `not counted (${describe(x)})`
      }
      peer.push(x.r.mbps)
      peerFirstByteMs.push(x.r.firstByteS * 1000)
      commitWaitMs.push(x.commitWaitMs)
      const who = x.r.xCacheSource === aId ? 'A' : x.r.xCacheSource
      sources[who] = (sources[who] ?? 0) + 1
      return `${x.r.mbps.toFixed(0)} MB/s (${describe(x)})`
    }
    const timedBase = async (): Promise<string> => {
      const r = await baseRun()
      base.push(r.mbps)
      baseFirstByteMs.push(r.firstByteS * 1000)
      return `${r.mbps.toFixed(0)} MB/s`
    }
    for (let i = 0; i < cfg.runs; i++) {
      // Alternate who goes first so drift hits both alike.
      let p: string
      let h: string
      if (i % 2 === 0) {
        p = await timedPeer()
        h = await timedBase()
      } else {
        h = await timedBase()
        p = await timedPeer()
      }
      log(`link run ${i + 1}/${cfg.runs}: peer ${p}, plain HTTP ${h}`)
    }
    const statsA = await a.stats()
    const statsB = await b.stats()
    const d = (s1: Record<string, number>, s0: Record<string, number>, k: string): number => (s1[k] ?? 0) - (s0[k] ?? 0)
    const fromPeers = d(statsB, statsB0, 'bytes_from_peers')
    const overData = d(statsB, statsB0, 'bytes_from_peers_data_channel')
    const served = d(statsA, statsA0, 'bytes_served_to_peers')
    const dataShare = fromPeers > 0 ? overData / fromPeers : NaN
    const warnings = summarizeWarnings([...warnLines(a.logs()), ...warnLines(b.logs())])

    log(
      `link: B ${spread(peer, 0)} MB/s (${peer.length} peer hits of ${cfg.runs} runs; rejected: ${
        rejected.join('; ') || 'none'
      }), plain HTTP ${spread(base, 0)} MB/s; link ${linkMBps} MB/s`
    )
    log(
      `link: B's first byte after ${spread(peerFirstByteMs, 0)} ms (plain HTTP ${spread(baseFirstByteMs, 0)} ms), B's commit ${
        spread(commitWaitMs, 0)
      } ms after the last byte`
    )
    log(
      `link: B bytes_from_peers ${(fromPeers / MB).toFixed(1)} MB, of which over the data channel ${(overData / MB).toFixed(1)} MB (${
        (dataShare * 100).toFixed(0)
      }%); A bytes_served_to_peers ${(served / MB).toFixed(1)} MB; B peer_hits ${d(statsB, statsB0, 'peer_hits')}, upstream_hits ${
        d(statsB, statsB0, 'upstream_hits')
      }`
    )
    for (const w of warnings) log(`link: node warning: ${w}`)

    ctx.samples['p2p_link'] = {
      bytes: blob.size,
      rate: cfg.rate,
      link_mbps: linkMBps,
      runs: cfg.runs,
      peer_mbps: peer,
      plain_http_mbps: base,
      peer_first_byte_ms: peerFirstByteMs,
      plain_http_first_byte_ms: baseFirstByteMs,
      commit_after_response_ms: commitWaitMs,
      sources,
      rejected_runs: rejected,
      b_store_cleared: removed,
      warm_up: warm === undefined ? undefined : describe(warm),
      warm_up_plain_http_mbps: warmBase.mbps,
      seed_mbps: seed.mbps,
      stats_delta: {
        b_bytes_from_peers: fromPeers,
        b_bytes_from_peers_data_channel: overData,
        a_bytes_served_to_peers: served,
        b_peer_hits: d(statsB, statsB0, 'peer_hits'),
        b_upstream_hits: d(statsB, statsB0, 'upstream_hits')
      },
      warnings
    }

    const value = median(peer)
    const baseline = median(base)
    const ratio = ratioOf(value, baseline)
    ctx.rows.push({
      metric,
      unit: 'MB/s',
      value,
      baseline,
      ratio,
      target: '>= 0.90',
      pass: peer.length > 0 && ratio >= 0.9,
      digits: 0,
      note: `2 hosts in network namespaces on one bridge, each link tbf ${cfg.rate} both ways (${linkMBps} MB/s); registry in A; ` +
        `median of ${peer.length} of ${cfg.runs} runs that were X-Cache: PEER with no upstream GET (only those count${
          rejected.length > 0 ? `; others: ${rejected.join('; ')}` : ''
        }), ` +
        `each after DELETE /api/cache on B, curl | sha256sum in B's namespace, digest checked; sources: ${tally(sources)}; ` +
        `B's bytes_from_peers_data_channel / bytes_from_peers over the timed runs: ${(overData / MB).toFixed(1)} / ${
          (fromPeers / MB).toFixed(1)
        } MB = ${Number.isFinite(dataShare) ? dataShare.toFixed(3) : '-'}; ` +
        `baseline: median of ${base.length} plain node:http file server GETs in A's namespace, same bytes, same link, same client, interleaved with the peer runs`
    })
  })
}
