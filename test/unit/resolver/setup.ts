import type { Logger } from 'pino'
import { Stats } from '../../../src/metrics/stats.js'
import { sha256Digest, type Digest } from '../../../src/oci/digest.js'
import type { PeerLookupInit } from '../../../src/resolver/peer-lookup.js'
import type { PeerNetwork } from '../../../src/resolver/peer-network.js'
import { BlobResolver } from '../../../src/resolver/blob-resolver.js'
import type { DownloadTiming } from '../../../src/resolver/download.js'
import type { BlobSource } from '../../../src/resolver/source.js'
import { FakeRegistryUpstream, pseudoRandom } from '../fakes/registry-upstream.js'
import { FakePeerNetwork } from '../fakes/peer-network.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { silentLog } from '../fakes/log.js'
import type { BucketTier } from '../../../src/bucket/bucket-tier.js'

/** Counters without a running process behind them. */
export function newStats (): Stats {
  return new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false })
}

/** The swarm side of a resolver with millisecond budgets. */
export function peerInit (
  swarm: PeerNetwork,
  opts: { lookupTimeoutMs?: number, idleMs?: number, stats?: Stats, log?: Logger } = {}
): PeerLookupInit {
  return {
    swarm,
    lookupTimeoutMs: opts.lookupTimeoutMs ?? 200,
    idleMs: opts.idleMs ?? 40,
    stats: opts.stats ?? newStats(),
    log: opts.log ?? silentLog()
  }
}

/** `size` deterministic bytes and their digest. */
export function content (size: number, seed = `blob-${size}`): { body: Buffer, digest: Digest } {
  const body = pseudoRandom(size, seed)
  return { body, digest: sha256Digest(body) }
}

/** Resolves once `cond()` holds; fails after `ms` with `what`. */
export async function until (cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

/** A BlobResolver on a real store, an in-memory upstream and (unless `p2p` is false) a fake swarm. */
export interface Rig {
  t: TestStore
  up: FakeRegistryUpstream
  net: FakePeerNetwork
  stats: Stats
  resolver: BlobResolver
  dispose: () => Promise<void>
}

/** Millisecond waits for the swarm side of a download. */
export const FAST_TIMING: Partial<DownloadTiming> = {
  busyRetryFirstMs: 5,
  busyRetryMaxMs: 20,
  claimRenewMs: 10,
  claimTimeoutMs: 30,
  hashesBusyMs: 300
}

export async function rig (
  opts: {
    p2p?: boolean
    idleMs?: number
    lookupTimeoutMs?: number
    lingerMs?: number
    maxSize?: number
    now?: () => number
    bucket?: BucketTier
  } = {}
): Promise<Rig> {
  const t = await openTestStore({ policy: { maxSize: opts.maxSize ?? 10_000_000 } })
  const up = new FakeRegistryUpstream()
  const net = await FakePeerNetwork.create({
    claimTimeoutMs: 20,
    inProgressIdleMs: 500,
    ...(opts.now !== undefined ? { now: opts.now } : {})
  })
  const stats = newStats()
  const log = silentLog(process.env.DEBUG_LOG === '1' ? 'debug' : 'silent')
  const peers = opts.p2p === false
    ? undefined
    : peerInit(net, {
      stats,
      log,
      ...(opts.idleMs !== undefined ? { idleMs: opts.idleMs } : {}),
      ...(opts.lookupTimeoutMs !== undefined ? { lookupTimeoutMs: opts.lookupTimeoutMs } : {})
    })
  const resolver = new BlobResolver({
    store: t.store,
    stats,
    log,
    peers,
    bucket: opts.bucket,
    lingerMs: opts.lingerMs ?? 0,
    timing: FAST_TIMING
  })
  return {
    t,
    up,
    net,
    stats,
    resolver,
    dispose: async () => {
      await resolver.drain(200)
      await up.close()
      await t.dispose()
    }
  }
}

/** The bytes of `source` from `start` to `end` (exclusive); the source is released. */
export async function read (source: BlobSource, start = 0, end?: number): Promise<Buffer> {
  try {
    const chunks: Buffer[] = []
    for await (const chunk of source.stream(start, end)) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  } finally {
    await source.release()
  }
}

/** What a reader got before its stream failed (or all of it), and the failure. */
export async function readUntilError (source: BlobSource): Promise<{ bytes: number, error: Error | undefined }> {
  let bytes = 0
  try {
    for await (const chunk of source.stream(0, undefined)) bytes += (chunk as Buffer).byteLength
    return { bytes, error: undefined }
  } catch (err) {
    return { bytes, error: err as Error }
  } finally {
    await source.release()
  }
}
