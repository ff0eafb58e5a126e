import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from '../../../src/store/blob-store.js'
import { Stats } from '../../../src/metrics/stats.js'
import { ApiRecords } from '../../../src/apicache/records.js'
import { Scopes } from '../../../src/apicache/scope.js'
import { ApiResolver } from '../../../src/apicache/resolver.js'
import type { ApiCacheAnswer } from '../../../src/apicache/answer.js'
import { ApiClient, type ApiPassUpstreams, type ApiUpstream } from '../../../src/upstream/api-client.js'
import type { FleetCredential } from '../../../src/upstream/fleet-credential.js'
import { FakeApiUpstream } from '../fakes/api-upstream.js'
import { FakeClock } from '../fakes/clock.js'
import { silentLog } from '../fakes/log.js'
import type { Logger } from 'pino'

/** An answer as a client receives it: a streamed body read whole. */
export interface ReceivedAnswer extends ApiCacheAnswer {
  body: Buffer
  /** The body came as a stream (it was over maxBody). */
  streamed: boolean
}

/** A resolver over the fake upstream, a real BlobStore on a temp dir, no peers. */
export interface ApiHarness {
  clock: FakeClock
  fake: FakeApiUpstream
  /** What the resolver asks: the fake itself, or an ApiClient to it over HTTP (`overHttp`). */
  client: ApiPassUpstreams
  /** The upstream requests name (the fake's own, or the ApiClient's). */
  upstream: ApiUpstream
  store: BlobStore
  records: ApiRecords
  stats: Stats
  scopes: Scopes
  resolver: ApiResolver
  /** `resolver.hit` then `resolver.get`, as ApiRoutes does; a streamed body is read whole. */
  ask: (path: string, headers?: Record<string, string>, signal?: AbortSignal) => Promise<ReceivedAnswer>
  close: () => Promise<void>
}

export interface ApiHarnessOptions {
  fleet?: FleetCredential
  maxBody?: number
  log?: Logger
  /** The fake served over node:http and asked through a real ApiClient (bounded reads, streamed bodies). */
  overHttp?: boolean
}

export async function apiHarness (opts: ApiHarnessOptions = {}): Promise<ApiHarness> {
  const clock = new FakeClock()
  const fake = new FakeApiUpstream({ clock })
  const dir = await mkdtemp(join(tmpdir(), 'apicache-unit-'))
  const store = await BlobStore.open({
    dir,
    log: silentLog(),
    policy: { maxSize: 1 << 30, highWatermark: 0.9, lowWatermark: 0.8, minAgeMs: 0 }
  })
  const records = new ApiRecords(store.db)
  const stats = new Stats({ currentSize: () => 0, peersConnected: () => 0, storeFull: () => false })
  const scopes = new Scopes(Buffer.from('unit-test-node-secret'))
  const http = opts.overHttp === true ? await overHttp(fake) : undefined
  const client: ApiPassUpstreams = http?.client ?? fake
  const upstream = client.upstream('github') ?? fake.api
  const resolver = new ApiResolver({
    client,
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
  const ask = async (
    path: string,
    headers: Record<string, string> = {},
    signal = new AbortController().signal
  ): Promise<ReceivedAnswer> => {
    const req = { upstream, path, headers }
    const answer = resolver.hit(req) ?? await resolver.get(req, { signal })
    return await received(answer)
  }
  return {
    clock,
    fake,
    client,
    upstream,
    store,
    records,
    stats,
    scopes,
    resolver,
    ask,
    close: async () => {
      await http?.close()
      await store.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/** `answer` as its client gets it: a streamed body read to its end. */
export async function received (answer: ApiCacheAnswer): Promise<ReceivedAnswer> {
  if (Buffer.isBuffer(answer.body)) return { ...answer, body: answer.body, streamed: false }
  const chunks: Buffer[] = []
  for await (const chunk of answer.body) chunks.push(chunk as Buffer)
  return { ...answer, body: Buffer.concat(chunks), streamed: true }
}

/** The fake on a loopback port, and an ApiClient whose `github` upstream it is. */
async function overHttp (fake: FakeApiUpstream): Promise<{ client: ApiClient, close: () => Promise<void> }> {
  const server: Server = createServer(fake.handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const client = new ApiClient({
    upstreams: [{ name: 'github', url: new URL(`http://127.0.0.1:${port}`) }],
    concurrency: 4,
    timeoutMs: 5000
  })
  return {
    client,
    close: async () => {
      await client.close()
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  }
}
