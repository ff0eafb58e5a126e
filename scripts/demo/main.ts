/**
 * `npm run demo`: the point of p2p-cache in half a minute, offline. A local upstream registry
 * (Debian's docker-registry) holds a freshly built image; three sidecars A, B, C form a private
 * swarm on 127.0.0.1; skopeo pulls the image through A (cold: from the upstream), B (from peer
 * A), C (from peers) and A again (its own store). For each pull the demo prints who served each
 * blob, from the sidecars' own logs, and what the upstream registry was asked; then each
 * sidecar's stats.
 *
 * Exit codes: 0 done, 1 failed, 2 a system tool is missing, 130/143 interrupted.
 * Nothing leaves 127.0.0.1; processes and temporary files are removed on every exit path.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildImage, type ImageDescription } from '../../test/fixtures/oci-image.js'
import { startRegistry, type Registry, type RegistryRequest } from '../../test/fixtures/registry.js'
import { CLI } from '../../test/fixtures/sidecar-process.js'
import { layoutBlobDigests, pullToLayout, pushLayout } from '../../test/fixtures/skopeo.js'
import { p2pStats, warnLines, type P2P_STAT_NAMES } from '../../test/fixtures/swarm.js'
import { waitFor } from '../../test/fixtures/wait.js'
import { Cleanup } from '../bench/cleanup.js'
import { announcedIn, servedIn, type Origin, type Served } from './evidence.js'
import { startNodes, waitForMesh, type DemoNode } from './nodes.js'
import { bold, cyan, dim, formatBytes, green, red, say, shortDigest, shortPeerId, step, table, yellow, type Cell } from './output.js'
import { ensureTools } from './tools.js'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
const REPO = 'demo/app'
const TAG = 'v1'
const LAYERS = 3
const LAYER_BYTES = 4 * 1024 * 1024
/** A safety net, not a target: the run takes ~15-30 s. */
const DEADLINE_MS = 180_000
/** Each wait on the sidecars (peers, commits, announcements). */
const WAIT_MS = 30_000

const t0 = performance.now()
/** Sidecars started so far: their warnings are printed if the run fails. */
const started: DemoNode[] = []

/** Teardown once, then exit, on Ctrl-C, SIGTERM or the deadline. Returns the disarm function. */
function guard (cleanup: Cleanup): () => void {
  const abort = (why: string, code: number): void => {
    process.stderr.write(`\ndemo: ${why}; stopping the sidecars and the registry, removing temporary files\n`)
    void cleanup.run().finally(() => process.exit(code))
  }
  const onSigint = (): void => abort('interrupted', 130)
  const onSigterm = (): void => abort('terminated', 143)
  process.once('SIGINT', onSigint)
  process.once('SIGTERM', onSigterm)
  const timer = setTimeout(() => abort(`not done after ${DEADLINE_MS / 1000} s`, 1), DEADLINE_MS)
  return () => {
    clearTimeout(timer)
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
  }
}

interface Ctx {
  work: string
  image: ImageDescription
  registry: Registry
  nodes: DemoNode[]
  /** Label of each blob of the image: manifest, config, layer 1..n. */
  labels: Map<string, string>
}

interface Pull {
  node: DemoNode
  why: string
}

interface PullResult {
  served: Served[]
  upstream: RegistryRequest[]
  ms: number
}

function originCell (ctx: Ctx, o: Origin): Cell {
  switch (o.kind) {
    case 'local':
      return { text: 'local', colour: green }
    case 'upstream':
      return { text: `upstream (${o.name})`, colour: yellow }
    case 'peer': {
      const by = ctx.nodes.find(n => n.peerId === o.peerId)
      return { text: `peer ${by?.name ?? '?'} (${shortPeerId(o.peerId)})`, colour: cyan }
    }
  }
}

/** "GET blob x4, HEAD manifest x1" for the upstream's requests of one pull. */
function describeRequests (reqs: RegistryRequest[]): string {
  if (reqs.length === 0) return 'nothing'
  const counts = new Map<string, number>()
  for (const r of reqs) {
    const what = /\/blobs\//.test(r.path)
      ? 'blob'
      : /\/manifests\/sha256:/.test(r.path)
      ? 'manifest by digest'
      : /\/manifests\//.test(r.path)
      ? 'manifest by tag'
      : r.path
    const key = `${r.method} ${what}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts].map(([k, n]) => `${k} x${n}`).join(', ')
}

/** Content downloads from the upstream: blob GETs and manifest GETs by digest (not tag HEADs). */
function isDownload (r: RegistryRequest): boolean {
  return r.method === 'GET' && r.status === 200 && (/\/blobs\/sha256:/.test(r.path) || /\/manifests\/sha256:/.test(r.path))
}

async function pullThrough (ctx: Ctx, node: DemoNode, n: number): Promise<PullResult> {
  const digests = ctx.image.allBlobDigests
  const mark = node.sidecar.logs().length
  await ctx.registry.settled()
  const regMark = ctx.registry.requests().length
  const out = join(ctx.work, `pull-${n}`)
  const started = performance.now()
  await pullToLayout(node.sidecar.host, REPO, TAG, out, { timeoutMs: 60_000 })
  const ms = performance.now() - started
  // skopeo wrote an OCI layout; every file is re-hashed against its name.
  const got = new Set(await layoutBlobDigests(out))
  const lacking = digests.filter(d => !got.has(d))
  if (lacking.length > 0) throw new Error(`the pull through sidecar ${node.name} lacks ${lacking.join(', ')}`)
  await rm(out, { recursive: true, force: true })
  // A blob fetched on a miss is committed (and logged) just after the client's last byte.
  const served = await waitFor(() => {
    const m = servedIn(node.sidecar.logs().slice(mark), digests)
    return m.size === digests.length ? m : undefined
  }, { timeoutMs: WAIT_MS, intervalMs: 20, what: `sidecar ${node.name} to log how it served each of the ${digests.length} blobs` })
  await ctx.registry.settled()
  return { served: digests.map(d => served.get(d) as Served), upstream: ctx.registry.requests().slice(regMark), ms }
}

function printPull (ctx: Ctx, pull: Pull, n: number, r: PullResult): void {
  say()
  say(bold(`Pull ${n}: sidecar ${pull.node.name} (${pull.why})`))
  say(dim(`  skopeo copy --src-tls-verify=false docker://${pull.node.sidecar.host}/${REPO}:${TAG} oci:<temp dir>:${TAG}`))
  say(table(
    ['blob', 'digest', 'size', 'served by'],
    r.served.map(s => [
      ctx.labels.get(s.digest) ?? '?',
      shortDigest(s.digest),
      formatBytes(s.size),
      originCell(ctx, s.origin)
    ]),
    [2]
  ))
  const downloads = r.upstream.filter(isDownload).length
  say(
    `  ${r.served.length} blobs in ${(r.ms / 1000).toFixed(1)} s, all verified (sha256). Upstream registry saw: ${
      describeRequests(r.upstream)
    }` +
      ` -> ${downloads} download${downloads === 1 ? '' : 's'}`
  )
}

/** Until `node` has provided every digest it stored on the DHT, so the next node can find it. */
async function waitForAnnouncements (node: DemoNode, r: PullResult): Promise<number> {
  const stored = r.served.filter(s => s.origin.kind !== 'local').map(s => s.digest)
  if (stored.length === 0) return 0
  await waitFor(() => {
    const done = announcedIn(node.sidecar.logs())
    return stored.every(d => done.has(d))
  }, { timeoutMs: WAIT_MS, intervalMs: 20, what: `sidecar ${node.name} to announce its ${stored.length} new blobs on the DHT` })
  return stored.length
}

const STAT_ROWS: Array<{ name: typeof P2P_STAT_NAMES[number], bytes: boolean }> = [
  { name: 'hits', bytes: false },
  { name: 'peer_hits', bytes: false },
  { name: 'upstream_hits', bytes: false },
  { name: 'bytes_from_peers', bytes: true },
  { name: 'bytes_from_upstream', bytes: true },
  { name: 'bytes_served_to_peers', bytes: true },
  { name: 'peers_connected', bytes: false }
]

async function printStats (nodes: DemoNode[]): Promise<void> {
  const stats = await Promise.all(nodes.map(async n => await p2pStats(n.sidecar)))
  say()
  say(bold('Stats (GET /api/cache/stats of each sidecar):'))
  say(table(
    ['stat', ...nodes.map(n => `sidecar ${n.name}`)],
    STAT_ROWS.map(row => [
      row.name,
      ...stats.map(s => {
        const v = s[row.name]
        return row.bytes ? `${formatBytes(v)} (${v})` : String(v)
      })
    ]),
    nodes.map((_n, i) => i + 1)
  ))
}

async function run (cleanup: Cleanup): Promise<number> {
  say(bold('p2p-cache demo: one upstream registry, three sidecars (A, B, C) in a private swarm, one image pulled four times.'))
  say(dim('Everything runs on 127.0.0.1 and is removed at the end.'))
  say()

  const tools = await ensureTools({
    pathVar: process.env.PATH,
    isRoot: process.getuid?.() === 0,
    installScript: join(ROOT, 'scripts/install-test-deps.sh'),
    print: line => say(line)
  })
  if (!tools.ok) {
    process.stderr.write(`${tools.message}\n`)
    return tools.code
  }
  if (!existsSync(CLI)) {
    process.stderr.write(`demo: ${CLI} is missing; run \`npm run build\` (\`npm run demo\` does it first)\n`)
    return 2
  }

  const work = await mkdtemp(join(tmpdir(), 'p2p-cache-demo-'))
  cleanup.add('temporary directory', () => rm(work, { recursive: true, force: true }))
  // The fixtures make their own temporary dirs (registry, skopeo sandboxes): keep them all in
  // `work`, so an interrupted run leaves nothing behind either.
  process.env.TMPDIR = work

  const image = await buildImage(join(work, 'image'), { tag: TAG, layers: LAYERS, layerSize: LAYER_BYTES })
  const labels = new Map<string, string>([[image.manifestDigest, 'manifest'], [image.configDigest, 'config']])
  image.layers.forEach((l, i) => labels.set(l.digest, `layer ${i + 1}`))
  const total = image.layers.reduce((s, l) => s + l.size, 0)
  step(
    t0,
    `built image ${REPO}:${TAG}: ${image.allBlobDigests.length} blobs (manifest, config, ${LAYERS} layers of ${
      formatBytes(LAYER_BYTES)
    } random data), ${formatBytes(total)}`
  )

  const registry = await startRegistry()
  cleanup.add('upstream registry', () => registry.destroy())
  await pushLayout(join(work, 'image'), TAG, registry.host, REPO)
  step(t0, `upstream registry (docker-registry) at ${registry.url}: pushed ${REPO}:${TAG} with skopeo`)

  const nodes = await startNodes({
    root: work,
    names: ['A', 'B', 'C'],
    upstreams: `${registry.host}=${registry.url}`,
    onStarted: node => {
      started.push(node)
      cleanup.add(`sidecar ${node.name}`, () => node.sidecar.stop())
    }
  })
  step(t0, 'started three sidecars, bootstrapped to each other (p2p-cache id --json, one CACHE_BOOTSTRAP_PEERS list for all):')
  say(
    table(
      ['sidecar', 'registry mirror', 'libp2p', 'pid'],
      nodes.map(n => [n.name, n.sidecar.url, n.p2pAddr.replace(n.peerId, shortPeerId(n.peerId)), String(n.pid)]),
      [3]
    )
  )
  await waitForMesh(nodes, WAIT_MS)
  step(t0, 'peers connected: each sidecar has the other two as peers and in its DHT routing table')

  await registry.settled()
  registry.clearRequests()
  const [a, b, c] = nodes as [DemoNode, DemoNode, DemoNode]
  const ctx: Ctx = { work, image, registry, nodes, labels }
  const pulls: Pull[] = [
    { node: a, why: 'cold: nothing is cached anywhere' },
    { node: b, why: 'A has the image' },
    { node: c, why: 'A and B have the image' },
    { node: a, why: 'again: A has it in its own store' }
  ]
  const results: PullResult[] = []
  for (const [i, pull] of pulls.entries()) {
    const r = await pullThrough(ctx, pull.node, i + 1)
    results.push(r)
    printPull(ctx, pull, i + 1, r)
    if (i < pulls.length - 1) {
      // Without this the next pull could race the DHT: a blob committed a millisecond ago is
      // not yet findable, and the next node would (correctly) fetch it upstream.
      const count = await waitForAnnouncements(pull.node, r)
      if (count > 0) step(t0, `sidecar ${pull.node.name} announced its ${count} new blobs on the DHT`)
    }
  }

  await printStats(nodes)

  const all = results.flatMap(r => r.served)
  const by = (k: Origin['kind']): number => all.filter(s => s.origin.kind === k).length
  const downloads = results.reduce((s, r) => s + r.upstream.filter(isDownload).length, 0)
  const tagChecks = results.reduce((s, r) => s + r.upstream.filter(q => q.method === 'HEAD').length, 0)
  const verdict = downloads === image.allBlobDigests.length ? green : red
  say()
  say(
    bold(verdict(`upstream served ${downloads} blob downloads for ${pulls.length} pulls`)) +
      ` of a ${image.allBlobDigests.length}-blob image.`
  )
  say(
    `${all.length} blobs delivered: ${by('upstream')} from upstream, ${by('peer')} from peers, ${by('local')} from local stores.` +
      ` The upstream also answered ${tagChecks} tag checks (HEAD, no content): it always decides what a tag points to.`
  )
  say(dim('Your own swarm: README, "Running a swarm"; what each counter means: README, "HTTP endpoints".'))
  step(t0, 'done; cleaning up')
  return 0
}

async function main (): Promise<number> {
  const cleanup = new Cleanup()
  const disarm = guard(cleanup)
  let code: number
  try {
    code = await run(cleanup)
  } catch (err) {
    if (cleanup.started) return await new Promise<number>(() => {}) // guard() is exiting
    process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n`)
    for (const n of started) {
      const warnings = warnLines(n.sidecar.logs()).slice(-5)
      if (warnings.length > 0) process.stderr.write(`--- sidecar ${n.name}: last warnings ---\n${warnings.join('\n')}\n`)
    }
    code = 1
  }
  await cleanup.run()
  disarm()
  return code
}

main().then(code => process.exit(code), (err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
