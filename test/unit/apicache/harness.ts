import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from '../../../src/store/blob-store.js'
import { Stats } from '../../../src/metrics/stats.js'
import { ApiRecords } from '../../../src/apicache/records.js'
import { Scopes } from '../../../src/apicache/scope.js'
import { ApiResolver, type ApiAnswer } from '../../../src/apicache/resolver.js'
import type { FleetCredential } from '../../../src/upstream/fleet-credential.js'
import { FakeApiUpstream } from '../fakes/api-upstream.js'
import { FakeClock } from '../fakes/clock.js'
import { silentLog } from '../fakes/log.js'
import type { Logger } from 'pino'

/** A resolver over the fake upstream, a real BlobStore on a temp dir, no peers. */
export interface ApiHarness {
  clock: FakeClock
  fake: FakeApiUpstream
  store: BlobStore
  records: ApiRecords
  stats: Stats
  scopes: Scopes
  resolver: ApiResolver
  /** `resolver.hit` then `resolver.get`, as ApiRoutes does. */
  ask: (path: string, headers?: Record<string, string>, signal?: AbortSignal) => Promise<ApiAnswer>
  close: () => Promise<void>
}

export async function apiHarness (opts: { fleet?: FleetCredential, maxBody?: number, log?: Logger } = {}): Promise<ApiHarness> {
  const clock = new FakeClock()
  const fake = new FakeApiUpstream({ clock })
  const dir = await mkdtemp(join(tmpdir(), 'apicache-unit-'))
  const store = await BlobStore.open({ dir, log: silentLog(), policy: { maxSize: 1 << 30, highWatermark: 0.9, lowWatermark: 0.8, minAgeMs: 0 } })
  const records = new ApiRecords(store.db)
  const stats = new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false })
  const scopes = new Scopes(Buffer.from('unit-test-node-secret'))
  const resolver = new ApiResolver({
    client: fake,
    store,
    records,
    scopes,
    fleet: new Map(opts.fleet !== undefined ? [['github', opts.fleet]] : []),
    stats,
    maxBody: opts.maxBody ?? 1024 * 1024,
    peers: undefined,
    log: opts.log ?? silentLog(),
    clock
  })
  const ask = async (path: string, headers: Record<string, string> = {}, signal = new AbortController().signal): Promise<ApiAnswer> => {
    const req = { upstream: fake.api, path, headers }
    return resolver.hit(req) ?? await resolver.get(req, signal)
  }
  return {
    clock, fake, store, records, stats, scopes, resolver, ask,
    close: async () => {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
