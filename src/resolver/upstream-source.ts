import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import { DigestMismatchError, type Digest, type DigestVerifier } from '../oci/digest.js'
import { DEFAULT_MANIFEST_ACCEPT, MANIFEST_TYPES, MAX_MANIFEST_BYTES, manifestTypeOfBody } from '../oci/media-types.js'
import { OciError } from '../oci/errors.js'
import { StoreFullError } from '../store/errors.js'
import { discard } from '../io/bounded-body.js'
import type { RegistryUpstream, UpstreamResponse } from '../upstream/registry-upstream.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import { parseContentRange } from '../upstream/content-range.js'
import { bodyBatches } from '../upstream/body-batches.js'
import type { Stats } from '../metrics/stats.js'
import type { PeerNetwork } from './peer-network.js'
import type { DownloadKind, DownloadSink } from './download-sink.js'
import { contentLength, mediaTypeOf } from '../http/fields.js'

/** The body is taken in batches of up to this many bytes (what arrived while the last batch was written). */
const WRITE_BATCH = 1024 * 1024
/** Times one download asks the upstream for the rest after it dropped mid-blob (each time after progress). */
export const MAX_UPSTREAM_RESUMES = 3

/** The upstream and repository a download reads from, and the download it fills. */
export interface UpstreamSourceInit {
  client: RegistryUpstream
  repo: string
  digest: Digest
  kind: DownloadKind
  stats: Stats
  log: Logger
  /** Told of the blob once its first bytes are in, and asked who is deny-listed; undefined without a swarm (CACHE_ENABLE_P2P=false). */
  swarm?: Pick<PeerNetwork, 'announce' | 'isDenied'> | undefined
  /** The download the bytes go to (`fetch`; `rest` does not use it). */
  sink: DownloadSink
}

/**
 * How the upstream answered a GET from byte `at`: `whole` false when it sent the rest (206 from
 * `at`; `total` is the whole size in bytes), true when it sent the whole blob again (200: it
 * ignored the Range).
 */
export type RangeAnswer = { whole: false, total: number } | { whole: true }

/**
 * Reads the answer `res` of `upstream` to a GET from byte `at` (see RangeAnswer). The caller
 * still owns the body.
 * @throws UpstreamUnavailableError for anything else (a 206 from another byte or without a
 * valid Content-Range, another 2xx)
 */
export function rangeAnswer (upstream: string, res: UpstreamResponse, at: number): RangeAnswer {
  const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : undefined
  if (range?.start === at) return { whole: false, total: range.total }
  if (res.status === 200) return { whole: true }
  throw new UpstreamUnavailableError(
    upstream,
    `answered ${res.status} with Content-Range ${res.headers['content-range'] ?? '(none)'} to a request from byte ${at}`
  )
}

/**
 * The upstream registry as the source of one download. `fetch` fills the download's file with
 * a GET, resuming with a Range after bytes peers delivered, and again (up to
 * MAX_UPSTREAM_RESUMES times) when the upstream drops mid-blob, so the clients reading the
 * download see one whole transfer. `rest` streams the end of the blob past the file, not stored,
 * for readers once the store is full.
 */
export class UpstreamSource {
  constructor (private readonly init: UpstreamSourceInit) {}

  /**
   * Fetches the blob or manifest into the sink's file from the upstream, resuming with a Range
   * after what peers delivered when it can (a manifest, small and not always served in ranges,
   * is fetched whole), and verifies it: resolves once `file.complete()` was called. A manifest
   * gets the Content-Type the upstream stated, or the type its body declares when that one is
   * generic. When bytes resumed from peers do not verify, the whole blob is fetched again, once.
   * @throws UpstreamStatusError and UpstreamUnavailableError of the upstream (unreachable, a
   * truncated body, a Range answered wrong), OciError MANIFEST_INVALID for a manifest larger
   * than MAX_MANIFEST_BYTES, DigestMismatchError, StoreFullError and the file's other errors,
   * the signal's reason
   */
  async fetch (options: Required<AbortOptions>): Promise<void> {
    const { signal } = options
    const { client, repo, stats, digest, kind, log, sink } = this.init
    const file = sink.file
    const manifest = kind === 'manifest'
    // A manifest is small and registries need not serve ranges of one: fetched whole.
    if (manifest && file.written > 0) await file.restart()
    // Bytes a deny-listed peer sent or vouched for (its piece hashes) are not resumed after: a
    // resumed copy that fails its digest would cut every client reading it, retries included.
    if (file.written > 0 && [...file.contributors].some(peer => this.init.swarm?.isDenied(peer) === true)) await file.restart()
    file.dropAhead()
    let refetchedWhole = false
    let resumes = 0
    let mediaType: string | undefined
    for (;;) {
      const resumeAt = file.written
      const headers: Record<string, string> = manifest ? { accept: DEFAULT_MANIFEST_ACCEPT } : {}
      if (resumeAt > 0) headers.range = `bytes=${resumeAt}-`
      const res = await client.sendOk('GET', repo, `/v2/${repo}/${manifest ? 'manifests' : 'blobs'}/${digest}`, headers, { signal })
      try {
        let size = contentLength(res.headers['content-length'])
        if (resumeAt > 0) {
          const answer = rangeAnswer(client.name, res, resumeAt)
          if (!answer.whole) size = answer.total
          else await file.restart()
        }
        if (manifest && size !== undefined && size > MAX_MANIFEST_BYTES) throw tooLarge(client.name, repo, digest)
        if (manifest) mediaType = mediaTypeOf(res.headers['content-type'])
        sink.sourced({ size, cache: 'MISS', origin: client.name, mediaType })
        // Chunks that arrived while the last batch was written go together (the body pauses at
        // WRITE_BATCH): one awaited write per ~64 KiB chunk leaves the thread pool, not the
        // network, as the bottleneck. A chunk that arrives alone is written at once.
        let announced = false
        for await (const batch of bodyBatches(res.body, WRITE_BATCH)) {
          let batchBytes = 0
          for (const buf of batch) batchBytes += buf.byteLength
          stats.inc('bytes_from_upstream', batchBytes)
          if (manifest && file.written + batchBytes > MAX_MANIFEST_BYTES) throw tooLarge(client.name, repo, digest)
          await file.append(batch, false)
          if (!announced) {
            // Announced while it arrives, not at commit, so a provider lookup finds it in progress
            // (claims find it at once), and so does a coordinator whose view of the swarm missed
            // the one that granted this node its lease: the record lands among the key's closest
            // peers, which answer claims from their provider records. Deferring it under a lease
            // saved a tenth of a herd's CPU and cost second upstream copies (issue 23). After the
            // first bytes: a DHT provide is a burst of work that would otherwise delay them. (A
            // node reading from a peer announces at commit.)
            announced = true
            this.init.swarm?.announce(digest, { now: true })
          }
        }
        if (file.size !== undefined && file.written !== file.size) {
          throw new UpstreamUnavailableError(client.name, `${kind} ${digest} truncated at ${file.written} of ${file.size} bytes`)
        }
      } catch (err) {
        discard(res.body)
        // The upstream dropped the connection mid-blob after sending something: ask for the
        // rest with a Range, so the clients reading this download see one whole transfer.
        if (
          !manifest && !signal.aborted && file.written > resumeAt && resumes < MAX_UPSTREAM_RESUMES &&
          !(err instanceof OciError) && !(err instanceof DigestMismatchError) && !(err instanceof StoreFullError)
        ) {
          resumes++
          log.info(
            { digest, upstream: client.name, at: file.written, size: file.size, err: (err as Error).message },
            'upstream dropped mid-blob; resuming with a Range'
          )
          continue
        }
        throw err
      }
      try {
        file.verify(`upstream ${client.name}`)
      } catch (err) {
        // Peer bytes before the resumed part may be what is wrong: once, fetch it all again.
        // Nobody is deny-listed: which source was wrong is unknowable from one digest.
        if (!(err instanceof DigestMismatchError) || file.peerBytes === 0 || refetchedWhole) throw err
        log.warn(
          { digest, peers: [...file.contributors], err: err.message },
          'bytes resumed from peers did not verify; fetching the whole blob from the upstream'
        )
        refetchedWhole = true
        await file.restart()
        continue
      }
      if (manifest && !MANIFEST_TYPES.includes(mediaType ?? '')) {
        // A generic Content-Type (application/octet-stream): the stored type is the body's.
        sink.setMediaType(manifestTypeOfBody(await file.readWritten()) ?? mediaType)
      }
      file.complete()
      return
    }
  }

  /**
   * The blob's bytes from byte `from` to its end, from the upstream and not stored (see
   * RestOfBlob): a GET with a Range for a blob, the whole manifest for a manifest (bytes before
   * `from` of a whole answer are skipped). Each chunk is hashed into `verifier` (the file's
   * digest state at `from`) before it is yielded; the digest is verified before the generator
   * returns. Counts `bytes_from_upstream`, and `bytes_passed_through` once verified.
   * @throws UpstreamStatusError, UpstreamUnavailableError, DigestMismatchError, the signal's reason
   */
  async *rest (from: number, verifier: DigestVerifier, options: Required<AbortOptions>): AsyncGenerator<Buffer> {
    const { client, repo, digest, stats, kind } = this.init
    // A manifest comes whole (registries need not serve ranges of one), a blob from where the file ends.
    const res = kind === 'manifest'
      ? await client.sendOk('GET', repo, `/v2/${repo}/manifests/${digest}`, { accept: DEFAULT_MANIFEST_ACCEPT }, options)
      : await client.sendOk('GET', repo, `/v2/${repo}/blobs/${digest}`, { range: `bytes=${from}-` }, options)
    try {
      // A 200 is the whole blob again: the bytes the file has are skipped.
      let skip = rangeAnswer(client.name, res, from).whole ? from : 0
      let at = from
      for await (const batch of bodyBatches(res.body, WRITE_BATCH)) {
        for (let chunk of batch) {
          if (skip > 0) {
            const n = Math.min(skip, chunk.byteLength)
            skip -= n
            chunk = chunk.subarray(n)
          }
          verifier.update(chunk)
          stats.inc('bytes_from_upstream', chunk.byteLength)
          at += chunk.byteLength
          yield chunk
        }
      }
      verifier.verify(`upstream ${client.name}`)
      stats.inc('bytes_passed_through', at - from)
    } finally {
      discard(res.body)
    }
  }
}

function tooLarge (upstream: string, repo: string, digest: Digest): OciError {
  return new OciError(
    502,
    'MANIFEST_INVALID',
    `upstream ${upstream} sent a manifest larger than ${MAX_MANIFEST_BYTES} bytes for ${repo}@${digest}`
  )
}
