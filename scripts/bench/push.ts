/**
 * The "push" rows of `npm run bench` (issue 25): build once, test on another runner. Three
 * emulated runner hosts on a shaped LAN (netns, tc tbf), and three sidecars on this host's
 * loopback, side by side in one run:
 *
 *   - registry: skopeo on host A pushes the image to the Debian docker-registry on A's loopback,
 *     and skopeo on another host pulls it from there over the link (the baseline);
 *   - swarm: skopeo on A pushes to A's sidecar (local namespace, CACHE_LOCAL_REPLICAS=1: the
 *     push is acknowledged once a peer holds it), and skopeo on the host that does not hold the
 *     replica pulls the tag from its own sidecar, which takes the blobs from peers.
 *
 * A new random image each round (its own repository on the registry; the sidecars' stores are
 * emptied first). Goals (issue 25): the push, which also writes the replica over the link,
 * within 1.3x of the registry push on loopback; the pull from a peer within 1.2x of the pull
 * from the registry. Over a link slower than the disk, the push can't meet its goal: the image
 * crosses the link before the push is acknowledged (the registry's pull crosses it later); the
 * loopback rows show what the replica costs without a link. The emulated hosts are skipped (with
 * the reason, as a row) where namespaces or tc tbf can't be used.
 */
import { mkdir, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { startRegistry } from '../../test/fixtures/registry.js'
import { buildShapedLan, type ShapedHost } from '../../test/fixtures/shaped-lan.js'
import { startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { cliId } from '../../test/fixtures/swarm.js'
import { startHerd } from '../../test/fixtures/herd.js'
import { buildImage } from '../../test/fixtures/oci-image.js'
import { skopeoCopy } from '../../test/fixtures/skopeo.js'
import { withSectionCleanup } from './cleanup.js'
import { spread, type SectionCtx } from './common.js'
import { linkSkipReason } from './p2p-link.js'
import { median, MiB, ratioOf } from './report.js'

export interface PushBenchConfig {
  layers: number
  layerBytes: number
  rounds: number
  rate: string
  rateMbit: number
}

export function pushBenchConfig (quick: boolean): PushBenchConfig {
  return { layers: 4, layerBytes: (quick ? 16 : 64) * MiB, rounds: quick ? 1 : 3, rate: '200mbit', rateMbit: 200 }
}

export async function pushBench (ctx: SectionCtx, cfg: PushBenchConfig): Promise<void> {
  const size = `${(cfg.layers * cfg.layerBytes / MiB).toFixed(0)} MiB`
  // This host's loopback: no link in the way, so the rows measure what the replica costs in CPU and disk.
  await withSectionCleanup(ctx, 'push loopback', async local => {
    const dir = join(ctx.work, 'push-loopback')
    await mkdir(dir, { recursive: true })
    local.add('push loopback dir', () => rm(dir, { recursive: true, force: true }))
    const registry = await startRegistry()
    local.add('push loopback registry', () => registry.destroy())
    const herd = await startHerd({
      count: 3,
      env: {
        CACHE_SWARM_KEY: randomBytes(32).toString('hex'),
        CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
        CACHE_LOCAL_REPLICAS: '1',
        CACHE_LOG_LEVEL: 'warn',
        CACHE_MAX_SIZE: '20GB'
      }
    })
    local.add('push loopback herd', () => herd.destroy())
    const nodes: SwarmNode[] = herd.nodes.map(side => ({
      side,
      netns: undefined,
      clear: async () => {
        const r = await fetch(`${side.url}/api/cache`, { method: 'DELETE' })
        if (!r.ok) throw new Error(`DELETE /api/cache: ${r.status}`)
      }
    }))
    const host = new URL(registry.url).host
    await compare(ctx, cfg, dir, { label: 'loopback, 3 sidecars on 2 cores', nodes, registryPush: host, registryPull: host })
  })
  const skip = await linkSkipReason()
  if (skip !== undefined) {
    ctx.log(`push: skipped: ${skip}`)
    ctx.samples.push_skipped = skip
    ctx.rows.push({
      metric: `push: ${size} with a replica vs the registry`,
      unit: 's',
      value: NaN,
      baseline: undefined,
      ratio: undefined,
      target: 'skipped',
      pass: undefined,
      digits: 2,
      note: skip
    })
    return
  }
  await withSectionCleanup(ctx, 'push', async local => {
    const dir = join(ctx.work, 'push')
    await mkdir(dir, { recursive: true })
    local.add('push dir', () => rm(dir, { recursive: true, force: true }))
    const lan = await buildShapedLan({ names: ['psha', 'pshb', 'pshc'], subnet: '10.79.2', rate: cfg.rate })
    local.add('push lan', () => lan.destroy())
    const hosts = lan.hosts as [ShapedHost, ShapedHost, ShapedHost]
    const [a] = hosts
    const registry = await startRegistry({ netns: a.ns, listenHost: '0.0.0.0', port: 5000 })
    local.add('push registry', () => registry.destroy())

    const swarmKey = randomBytes(32).toString('hex')
    const ids = await Promise.all(hosts.map(async h => {
      const home = join(dir, h.name)
      return { home, ...(await cliId({ HOME: home, CACHE_DIR: join(home, 'data') })) }
    }))
    const bootstrap = `/ip4/${a.ip}/tcp/9000/p2p/${ids[0]?.peerId ?? ''}`
    const sidecars: SidecarProcess[] = []
    for (const [i, h] of hosts.entries()) {
      const side = await startSidecar(
        {
          CACHE_ENABLE_P2P: 'true',
          CACHE_LISTEN_ADDRS: `/ip4/${h.ip}/tcp/9000`,
          CACHE_BOOTSTRAP_PEERS: i === 0 ? '' : bootstrap,
          CACHE_SWARM_KEY: swarmKey,
          CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
          CACHE_LOCAL_REPLICAS: '1',
          CACHE_LOG_LEVEL: 'warn',
          CACHE_MAX_SIZE: '20GB'
        },
        { netns: h.ns, dir: ids[i]?.home as string }
      )
      local.add(`push sidecar ${h.name}`, () => side.destroy())
      sidecars.push(side)
    }
    const [sa] = sidecars as [SidecarProcess]
    const deadline = Date.now() + 60_000
    while (((await sa.stats()).peers_connected ?? 0) < 2) {
      if (Date.now() > deadline) throw new Error('push bench: the three sidecars did not connect within 60 s')
      await new Promise(resolve => setTimeout(resolve, 250))
    }

    const nodes: SwarmNode[] = sidecars.map((side, i) => ({
      side,
      netns: hosts[i]?.ns.name,
      clear: async () => {
        const r = await hosts[i]?.ns.run('curl', ['-sS', '-X', 'DELETE', '--max-time', '60', `${side.url}/api/cache`])
        if (r !== undefined && r.code !== 0) throw new Error(`DELETE /api/cache: ${r.stderr}`)
      }
    }))
    await compare(ctx, cfg, dir, {
      label: `${cfg.rateMbit} Mbit, netns`,
      nodes,
      registryPush: '127.0.0.1:5000',
      registryPull: `${a.ip}:5000`
    })
  })
}

/** A sidecar of the swarm, where its clients run (a namespace, or this host), and how its store is emptied. */
interface SwarmNode {
  side: SidecarProcess
  netns: string | undefined
  clear: () => Promise<void>
}

interface Setup {
  label: string
  /** nodes[0] is pushed to; the others hold the replica or pull. */
  nodes: SwarmNode[]
  /** The registry as the pusher reaches it (its loopback), and as the puller does. */
  registryPush: string
  registryPull: string
}

/**
 * Rounds of: a new random image pushed to the registry and pulled on another runner, then pushed
 * to the first sidecar and pulled on the runner that does not hold its replica. Adds the rows.
 */
async function compare (ctx: SectionCtx, cfg: PushBenchConfig, dir: string, setup: Setup): Promise<void> {
  const size = `${(cfg.layers * cfg.layerBytes / MiB).toFixed(0)} MiB`
  const [pusher, ...others] = setup.nodes as [SwarmNode, SwarmNode, SwarmNode]
  const push: Record<'registry' | 'swarm', number[]> = { registry: [], swarm: [] }
  const pull: Record<'registry' | 'swarm', number[]> = { registry: [], swarm: [] }
  const replicaPulls: number[] = []
  /** What the manifest PUT waited for the replica (replication_wait_seconds), per round. */
  const waited: number[] = []
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t = performance.now()
    await fn()
    return (performance.now() - t) / 1000
  }
  const tag = `${setup.label.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`
  for (let round = 0; round < cfg.rounds; round++) {
    const image = join(dir, `image-${round}`)
    await buildImage(image, { tag: '1', layers: cfg.layers, layerSize: cfg.layerBytes })
    for (const n of setup.nodes) await n.clear()
    const held = await Promise.all(others.map(async n => (await n.side.stats()).replicas_held ?? 0))
    const out = (name: string): string => join(dir, `pulled-${round}-${name}`)
    const repo = `${tag}-${round}`

    // The registry: push on the pusher's loopback, pull on another runner.
    push.registry.push(
      await timed(async () =>
        await skopeoCopy(`oci:${image}:1`, `docker://${setup.registryPush}/bench/${repo}:1`, {
          destTlsVerify: false,
          netns: pusher.netns,
          timeoutMs: 600_000
        })
      )
    )
    pull.registry.push(
      await timed(async () =>
        await skopeoCopy(`docker://${setup.registryPull}/bench/${repo}:1`, `oci:${out('registry')}:1`, {
          srcTlsVerify: false,
          netns: others[0]?.netns,
          timeoutMs: 600_000
        })
      )
    )

    // The swarm: push to the first sidecar, pull on the runner without the replica.
    const waitedBefore = (await pusher.side.stats()).replication_wait_seconds ?? 0
    push.swarm.push(
      await timed(async () =>
        await skopeoCopy(`oci:${image}:1`, `docker://${pusher.side.host}/local/${repo}:1`, {
          destTlsVerify: false,
          netns: pusher.netns,
          timeoutMs: 600_000
        })
      )
    )
    waited.push(((await pusher.side.stats()).replication_wait_seconds ?? 0) - waitedBefore)
    const after = await Promise.all(others.map(async n => (await n.side.stats()).replicas_held ?? 0))
    const replica = others.find((_, i) => (after[i] ?? 0) > (held[i] ?? 0))
    const puller = others.find(n => n !== replica) as SwarmNode
    pull.swarm.push(
      await timed(async () =>
        await skopeoCopy(`docker://${puller.side.host}/local/${repo}:1`, `oci:${out('swarm')}:1`, {
          srcTlsVerify: false,
          netns: puller.netns,
          timeoutMs: 600_000
        })
      )
    )
    if (replica !== undefined) {
      replicaPulls.push(
        await timed(async () =>
          await skopeoCopy(`docker://${replica.side.host}/local/${repo}:1`, `oci:${out('replica')}:1`, {
            srcTlsVerify: false,
            netns: replica.netns,
            timeoutMs: 600_000
          })
        )
      )
    }
    ctx.log(
      `push (${setup.label}): round ${round + 1}: push registry ${push.registry.at(-1)?.toFixed(2) ?? '-'} s, swarm ${
        push.swarm.at(-1)?.toFixed(2) ?? '-'
      } s (its manifest PUT waited ${waited.at(-1)?.toFixed(2) ?? '-'} s for the replica); pull registry ${
        pull.registry.at(-1)?.toFixed(2) ?? '-'
      } s, from peers ${pull.swarm.at(-1)?.toFixed(2) ?? '-'} s, on the replica ${replicaPulls.at(-1)?.toFixed(2) ?? '-'} s`
    )
    await rm(image, { recursive: true, force: true })
    for (const name of ['registry', 'swarm', 'replica']) await rm(out(name), { recursive: true, force: true })
  }
  ctx.samples[`push_${tag}`] = { push, pull, replicaPulls, waited, size }
  const [pushSwarm, pushRegistry, pullSwarm, pullRegistry] = [
    median(push.swarm),
    median(push.registry),
    median(pull.swarm),
    median(pull.registry)
  ]
  ctx.rows.push({
    metric:
      `push: ${size} to the local namespace, acknowledged with a replica, vs docker-registry on the pusher's loopback (${setup.label})`,
    unit: 's',
    value: pushSwarm,
    baseline: pushRegistry,
    ratio: ratioOf(pushSwarm, pushRegistry),
    target: '<= 1.3',
    pass: ratioOf(pushSwarm, pushRegistry) <= 1.3,
    digits: 2,
    note: `swarm ${spread(push.swarm, 2)} (of which the manifest PUT waited for the replica ${spread(waited, 2)}), registry ${
      spread(push.registry, 2)
    }`
  })
  ctx.rows.push({
    metric: `push: its pull on another runner, from peers, vs from that docker-registry (${setup.label})`,
    unit: 's',
    value: pullSwarm,
    baseline: pullRegistry,
    ratio: ratioOf(pullSwarm, pullRegistry),
    target: '<= 1.2',
    pass: ratioOf(pullSwarm, pullRegistry) <= 1.2,
    digits: 2,
    note: `peers ${spread(pull.swarm, 2)}, registry ${spread(pull.registry, 2)}; on the replica's runner ${spread(replicaPulls, 2)}`
  })
  const [totalSwarm, totalRegistry] = [pushSwarm + pullSwarm, pushRegistry + pullRegistry]
  ctx.rows.push({
    metric: `push: build job's push + test job's pull (${setup.label})`,
    unit: 's',
    value: totalSwarm,
    baseline: totalRegistry,
    ratio: ratioOf(totalSwarm, totalRegistry),
    target: '-',
    pass: undefined,
    digits: 2,
    note: "the swarm's push also writes the replica; a test job on the replica's runner pulls from its own store"
  })
}
