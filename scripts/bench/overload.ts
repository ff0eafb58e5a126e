/**
 * The overload campaign (issue 16, part 4): one sidecar process (P2P off) in front of the real
 * registry, with a 64 MiB blob and a manifest pulled once (later GETs are hits), then
 *
 *   1. `connections` TCP connections held open (a third send nothing, a third half a request's
 *      headers, a third one whole request and then nothing) while a normal client GETs the
 *      manifest by tag and a small blob, 20 rounds: what it was served and how fast (p50/p99),
 *      the sidecar's RSS per held connection, and how the server closed the held ones (408 at
 *      the header timeout, or at the idle timeout);
 *   2. `slowReaders` clients GET the 64 MiB blob, read a first chunk and stop reading, while
 *      another client GETs the whole blob: the sidecar's RSS growth, and when the server dropped
 *      them (the stall timeout) and closed their blob files.
 *
 * The limits are short (header and idle 5 s, stall 3 s: CACHE_HTTP_* options) so a run takes
 * about half a minute; the behaviour is the defaults' (10 s, 65 s, 60 s), scaled. The phases
 * are test/fixtures/overload.ts's, which test/reliability/overload.test.ts asserts on.
 *
 * Run alone: node --import tsx scripts/bench/overload.ts [connections] [slowReaders]
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRegistry, type Registry } from '../../test/fixtures/registry.js'
import { startSidecar, type SidecarProcess } from '../../test/fixtures/sidecar-process.js'
import { pushBlob } from '../../test/fixtures/swarm.js'
import {
  connectionFlood,
  percentile,
  pushManifest,
  rssPerConnection,
  seededBytes,
  slowReaders,
  timedGet,
  type Timed,
  type Watched
} from '../../test/fixtures/overload.js'

const MiB = 1024 * 1024
const BIG = 64 * MiB
const REPO = 'bench/overload'
const LIMITS = { headerTimeoutMs: 5_000, idleTimeoutMs: 5_000, stallTimeoutMs: 3_000 }
const ROUNDS = 20

export interface OverloadFigures {
  limits: typeof LIMITS
  /** Connections asked for, and how many more sockets the sidecar held once it had them. */
  connections: number
  connectionsHeld: number
  /** Held connections still open when the normal client started. */
  openWhenServing: number
  /** Requests of the normal client during the flood: answered right, failed, and latency. */
  served: number
  servedFailed: number
  servedP50Ms: number
  servedP99Ms: number
  /** (peak RSS while held - the lower of RSS before and after) / connections: an upper bound. */
  rssPerConnectionKiB: number
  /** How the server closed the held connections. */
  closedByHeaderTimeout408: number
  closedByIdleTimeout: number
  notClosedByServer: number
  slowReaders: number
  slowReadersRssGrowthMiB: number
  /** From the stall until the server had closed their blob files; null if it did not within 2 x stall + 20 s. */
  slowReadersDroppedAfterMs: number | null
  /** Stalled readers whose response the server cut (all of them, when the stall timeout works). */
  slowReadersCut: number
  /** The whole blob to another client while they stalled. */
  wholeBlobMs: number
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`

/**
 * Runs the campaign on its own registry and sidecar (both torn down at the end) and returns its
 * figures. Throws if set-up fails (registry, sidecar, warm-up pull); the phases report rather
 * than throw.
 */
export async function overloadCampaign (opts: { connections: number, slowReaders: number }): Promise<OverloadFigures> {
  let registry: Registry | undefined
  let sidecar: SidecarProcess | undefined
  try {
    registry = await startRegistry()
    sidecar = await startSidecar({
      CACHE_REGISTRY_UPSTREAMS: `local=${registry.url}`,
      CACHE_HTTP_HEADER_TIMEOUT: `${LIMITS.headerTimeoutMs}ms`,
      CACHE_HTTP_IDLE_TIMEOUT: `${LIMITS.idleTimeoutMs}ms`,
      CACHE_HTTP_STALL_TIMEOUT: `${LIMITS.stallTimeoutMs}ms`,
      CACHE_LOG_LEVEL: 'warn'
    })
    const url = sidecar.url
    const big = seededBytes(BIG, 'bench overload big layer')
    const small = seededBytes(256 * 1024, 'bench overload small layer')
    const bigDigest = await pushBlob(registry.url, REPO, big)
    const smallDigest = await pushBlob(registry.url, REPO, small)
    const manifestDigest = await pushManifest(registry.url, REPO, 'v1', [
      { digest: bigDigest, size: BIG },
      { digest: smallDigest, size: small.byteLength }
    ])
    for (const path of [`blobs/${bigDigest}`, `blobs/${smallDigest}`]) {
      const warm = await timedGet(`${url}/v2/${REPO}/${path}`, res => res.status === 200, { timeoutMs: 60_000 })
      if (!warm.ok) throw new Error(`overload bench: warm-up GET ${path}: ${warm.detail ?? ''}`)
    }
    const w: Watched = {
      host: '127.0.0.1',
      port: sidecar.port,
      pid: sidecar.proc.child.pid as number,
      blobsDir: join(sidecar.env.CACHE_DIR as string, 'blobs')
    }

    const serve = async (): Promise<Timed[]> => [
      await timedGet(`${url}/v2/${REPO}/manifests/v1`, (res, body) => res.status === 200 && sha256(body) === manifestDigest, {
        timeoutMs: 30_000,
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }
      }),
      await timedGet(`${url}/v2/${REPO}/blobs/${smallDigest}`, (res, body) => res.status === 200 && sha256(body) === smallDigest, {
        timeoutMs: 30_000
      })
    ]
    const flood = await connectionFlood(w, {
      connections: opts.connections,
      rounds: ROUNDS,
      serve,
      closeWithinMs: Math.max(LIMITS.headerTimeoutMs, LIMITS.idleTimeoutMs) + 20_000
    })
    flood.held.close()
    const ok = flood.served.filter(t => t.ok)

    let wholeBlobMs = NaN
    const slow = await slowReaders(w, {
      readers: opts.slowReaders,
      path: `/v2/${REPO}/blobs/${bigDigest}`,
      dropWithinMs: 2 * LIMITS.stallTimeoutMs + 20_000,
      meanwhile: async () => {
        const whole = await timedGet(
          `${url}/v2/${REPO}/blobs/${bigDigest}`,
          (res, body) => res.status === 200 && sha256(body) === bigDigest,
          { timeoutMs: 60_000 }
        )
        wholeBlobMs = whole.ok ? whole.ms : NaN
      }
    })
    const round = (x: number, digits = 0): number => Math.round(x * 10 ** digits) / 10 ** digits
    return {
      limits: LIMITS,
      connections: opts.connections,
      connectionsHeld: flood.serverHeld,
      openWhenServing: flood.openWhenServing,
      served: ok.length,
      servedFailed: flood.served.length - ok.length,
      servedP50Ms: round(percentile(ok.map(t => t.ms), 50), 1),
      servedP99Ms: round(percentile(ok.map(t => t.ms), 99), 1),
      rssPerConnectionKiB: round(rssPerConnection(flood, opts.connections) / 1024, 1),
      closedByHeaderTimeout408:
        flood.held.all.filter(c => c.closedByServerAfterMs !== undefined && c.received().startsWith('HTTP/1.1 408 ')).length,
      closedByIdleTimeout: flood.held.all.filter(c => c.kind === 'kept-alive' && c.closedByServerAfterMs !== undefined).length,
      notClosedByServer: flood.held.all.filter(c => c.closedByServerAfterMs === undefined).length,
      slowReaders: opts.slowReaders,
      slowReadersRssGrowthMiB: round((slow.rssPeak - slow.rssBefore) / MiB),
      slowReadersDroppedAfterMs: slow.droppedAfterMs === undefined ? null : round(slow.droppedAfterMs),
      slowReadersCut: slow.drained.filter(d => !d.complete).length,
      wholeBlobMs: round(wholeBlobMs)
    }
  } finally {
    await sidecar?.destroy()
    await registry?.destroy()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const connections = Number(process.argv[2] ?? '1000')
  const readers = Number(process.argv[3] ?? '20')
  overloadCampaign({ connections, slowReaders: readers }).then(figures => {
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`)
    process.exit(0)
  }, (err: Error) => {
    process.stderr.write(`overload bench failed: ${err.message}\n`)
    process.exit(1)
  })
}
