import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import { DigestMismatchError, type Digest } from '../oci/digest.js'
import { MANIFEST_TYPES, MAX_MANIFEST_BYTES, declaredMediaType, manifestTypeOfBody } from '../oci/media-types.js'
import { StoreError } from '../store/errors.js'
import { bodyBatches } from '../upstream/body-batches.js'
import type { Stats } from '../metrics/stats.js'
import { BucketError } from '../bucket/bucket.js'
import { BUCKET_ORIGIN, type BucketTier } from '../bucket/bucket-tier.js'
import type { DownloadKind, DownloadSink } from './download-sink.js'
import type { PeerNetwork } from './peer-network.js'

/** The body is taken in batches of up to this many bytes (as the upstream's is). */
const WRITE_BATCH = 1024 * 1024
/** Objects up to this size are verified whole before a reader gets a byte (see BucketSource.fetch). */
const VERIFY_FIRST_BYTES = 8 * 1024 * 1024

export interface BucketSourceInit {
  bucket: Pick<BucketTier, 'openBlob' | 'badBlob' | 'failed' | 'readTimeoutMs'>
  digest: Digest
  kind: DownloadKind
  stats: Stats
  log: Logger
  /** Told of the blob once its first bytes are in; undefined without a swarm. */
  swarm?: Pick<PeerNetwork, 'announce'> | undefined
  sink: DownloadSink
}

/**
 * The bucket (CACHE_S3_URL) as the source of one download, between the swarm and the upstream
 * (issue 27). Its bytes are verified against the digest like any other source's: the bucket is a
 * cache, not an authority. A bad object is reported (so it is written over later) and skipped; a
 * bucket that does not answer within CACHE_S3_TIMEOUT, or stalls that long mid-body, is skipped.
 * Skipping starts the file over, so the upstream sends the whole blob.
 */
export class BucketSource {
  /** The bucket's copy failed its digest: the upload after the upstream fetch writes over it. */
  foundBad = false

  constructor (private readonly init: BucketSourceInit) {}

  /**
   * Fills the sink's file from the bucket and verifies it: true once `file.complete()` was
   * called; false when the bucket has no good copy (the file is then empty again).
   * @throws the file's errors (the local disk, StoreFullError), the signal's reason
   */
  async fetch (options: Required<AbortOptions>): Promise<boolean> {
    const { signal } = options
    const { bucket, digest, kind, stats, log, sink } = this.init
    const file = sink.file
    if (file.written > 0) await file.restart()
    const object = await bucket.openBlob(digest, { signal })
    if (object === undefined) return false
    const manifest = kind === 'manifest'
    if (manifest && object.size > MAX_MANIFEST_BYTES) {
      object.body.destroy()
      this.foundBad = true
      bucket.badBlob(digest, `a ${object.size} byte manifest, above ${MAX_MANIFEST_BYTES} bytes`)
      return false
    }
    // A small object is verified before anyone reads it: a bad one then costs a client nothing
    // (clients such as skopeo do not retry a layer cut mid-body). A large one is served as it
    // arrives, its last byte held back until it verified, as from the upstream.
    const verifyFirst = object.size <= VERIFY_FIRST_BYTES
    if (!verifyFirst) sink.sourced({ size: object.size, cache: 'MISS', origin: BUCKET_ORIGIN, bucket: true })
    // A body that stalls for CACHE_S3_TIMEOUT is given up, like an answer that never starts.
    let stall: NodeJS.Timeout | undefined
    const watch = (): void => {
      clearTimeout(stall)
      stall = setTimeout(() => {
        object.body.destroy(new BucketError('GET', digest, undefined, `no bytes for ${bucket.readTimeoutMs} ms mid-body`))
      }, bucket.readTimeoutMs)
      stall.unref()
    }
    try {
      watch()
      let announced = false
      for await (const batch of bodyBatches(object.body, WRITE_BATCH)) {
        watch()
        let bytes = 0
        for (const buf of batch) bytes += buf.byteLength
        stats.inc('s3_bytes_read', bytes)
        if (file.written + bytes > object.size) {
          throw new DigestMismatchError(digest, `more than the ${object.size} bytes stated`, `bucket ${BUCKET_ORIGIN}`)
        }
        await file.append(batch, false)
        if (!announced) {
          // As for the upstream: announced while it arrives, so the swarm finds it in progress.
          announced = true
          this.init.swarm?.announce(digest, { now: true })
        }
      }
      clearTimeout(stall)
      if (file.written !== object.size) {
        throw new BucketError('GET', digest, undefined, `body ended at ${file.written} of ${object.size} bytes`)
      }
      file.verify(`bucket ${BUCKET_ORIGIN}`)
      if (verifyFirst) sink.sourced({ size: object.size, cache: 'MISS', origin: BUCKET_ORIGIN, bucket: true })
      if (manifest) sink.setMediaType(await this.manifestType(object.contentType))
    } catch (err) {
      clearTimeout(stall)
      object.body.destroy()
      if (signal.aborted || err instanceof StoreError) throw err
      if (err instanceof DigestMismatchError) {
        this.foundBad = true
        bucket.badBlob(digest, err.message)
      } else bucket.failed('GET', err as Error)
      log.info({ digest, err: (err as Error).message }, 'bucket copy skipped; asking the upstream')
      await file.restart()
      return false
    }
    file.complete()
    return true
  }

  /** The manifest's type: the object's Content-Type when the body agrees, else what the body declares. */
  private async manifestType (stated: string | undefined): Promise<string | undefined> {
    const body = await this.init.sink.file.readWritten()
    const declared = declaredMediaType(body)
    const known = stated !== undefined && MANIFEST_TYPES.includes(stated) ? stated : undefined
    if (known !== undefined && (declared === undefined || declared === known)) return known
    return declared ?? manifestTypeOfBody(body)
  }
}
