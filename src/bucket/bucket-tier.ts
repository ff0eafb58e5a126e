import type { Logger } from 'pino'
import type { AbortOptions } from '@libp2p/interface'
import type { Digest } from '../oci/digest.js'
import type { Stats } from '../metrics/stats.js'
import type { Bucket, BucketObject } from './bucket.js'
import type { BucketWriter, RecordWriteOptions } from './bucket-writer.js'
import { blobObjectKey, recordName, recordObjectKey, recordPrefix } from './object-keys.js'
import { BAD_OBJECT_SKIP_MS, BUCKET_DOWN_MS, MAX_LISTED, MAX_RECORD_BYTES } from './constants.js'
import { TtlSet } from '../clock/ttl-set.js'

/** The origin responses and logs name for bytes read from the bucket (`X-Cache-Source: s3`). */
export const BUCKET_ORIGIN = 's3'

export interface BucketTierInit {
  bucket: Pick<Bucket, 'name' | 'get' | 'head' | 'list'>
  writer: Pick<BucketWriter, 'blob' | 'record'>
  stats: Stats
  log: Logger
  /** CACHE_S3_TIMEOUT: to the first byte of an answer, and between two bytes of a body (ms). */
  readTimeoutMs: number
  /** Overrides BUCKET_DOWN_MS (unit tests). */
  downMs?: number
}

/** A record object: the value as its writer kept it, and when it was made (ms since the epoch). */
export interface BucketRecord {
  value: unknown
  storedAt: number
}

/**
 * The bucket as the sidecar's second tier (issue 27): reads that never cost a pull more than
 * CACHE_S3_TIMEOUT (then the caller goes on to the upstream), and writes in the background
 * (BucketWriter). The bucket is a cache, not an authority: what it returns is checked by the
 * caller (blobs by digest, records by their kind). After a read fails (not a 404), reads skip
 * the bucket for BUCKET_DOWN_MS, so an outage costs one timeout rather than one per blob.
 */
export class BucketTier {
  private downUntil = 0
  /** Digests whose object failed verification: not read again for a while (a client's retry would meet it again). */
  private readonly badBlobs = new TtlSet(BAD_OBJECT_SKIP_MS)

  constructor (private readonly init: BucketTierInit) {}

  /** `s3://bucket/prefix/`, for logs. */
  get name (): string {
    return this.init.bucket.name
  }

  /** CACHE_S3_TIMEOUT in ms (the idle bound of a body being read, see BucketSource). */
  get readTimeoutMs (): number {
    return this.init.readTimeoutMs
  }

  /**
   * The object of `digest`, once its headers are in (within CACHE_S3_TIMEOUT); the caller reads
   * or destroys the body and verifies it. Undefined when the bucket has none, is down, or did
   * not answer in time (counted, and the bucket skipped for a while, see `failed`).
   */
  async openBlob (digest: Digest, options: AbortOptions = {}): Promise<BucketObject | undefined> {
    if (this.badBlobs.has(digest)) return undefined
    return await this.read(blobObjectKey(digest), options)
  }

  /** The size in bytes of the bucket's object of `digest`; undefined when it has none (or is down, or slow). */
  async headBlob (digest: Digest, options: AbortOptions = {}): Promise<number | undefined> {
    if (this.isDown()) return undefined
    try {
      return (await this.init.bucket.head(blobObjectKey(digest), { signal: timeoutSignal(this.init.readTimeoutMs, options.signal) }))?.size
    } catch (err) {
      if (options.signal?.aborted === true) throw options.signal.reason
      this.failed('HEAD', err as Error)
      return undefined
    }
  }

  /** Record `name` of `kind` as the bucket has it; undefined when it has none (or is down, or slow). */
  async readRecord (kind: string, name: string, options: AbortOptions = {}): Promise<BucketRecord | undefined> {
    const key = recordObjectKey(kind, name)
    const object = await this.read(key, options)
    if (object === undefined) return undefined
    try {
      if (object.size > MAX_RECORD_BYTES) throw new Error(`${object.size} bytes, above ${MAX_RECORD_BYTES}`)
      const chunks: Buffer[] = []
      let bytes = 0
      for await (const chunk of object.body) {
        bytes += (chunk as Buffer).byteLength
        if (bytes > MAX_RECORD_BYTES) throw new Error(`above ${MAX_RECORD_BYTES} bytes`)
        chunks.push(chunk as Buffer)
      }
      this.init.stats.inc('s3_bytes_read', bytes)
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<BucketRecord>
      if (typeof parsed !== 'object' || parsed === null || typeof parsed.storedAt !== 'number' || !('value' in parsed)) {
        throw new Error('not a { value, storedAt } record')
      }
      return { value: parsed.value, storedAt: parsed.storedAt }
    } catch (err) {
      object.body.destroy()
      this.bad(key, (err as Error).message)
      return undefined
    }
  }

  /**
   * The names of `kind`'s records that start with `namePrefix` (a group's: a repository's tags,
   * a cache scope's entries), at most `limit` (and MAX_LISTED); [] when the bucket is down or
   * refuses listing.
   */
  async listRecords (kind: string, namePrefix: string, limit: number, options: AbortOptions = {}): Promise<string[]> {
    if (this.isDown()) return []
    const signal = timeoutSignal(this.init.readTimeoutMs, options.signal)
    try {
      const keys = await this.init.bucket.list(`${recordPrefix(kind)}${encodeURIComponent(namePrefix)}`, Math.min(limit, MAX_LISTED), {
        signal
      })
      return keys.flatMap(k => recordName(kind, k) ?? [])
    } catch (err) {
      if (options.signal?.aborted !== true) this.failed('LIST', err as Error)
      return []
    }
  }

  /** Writes `value` (made at `storedAt`) as record `name` of `kind`, in the background. */
  writeRecord (kind: string, name: string, value: unknown, storedAt: number, opts: RecordWriteOptions = {}): void {
    this.init.writer.record(recordObjectKey(kind, name), { value, storedAt }, opts)
  }

  /** Uploads stored `digest` in the background (see BucketWriter.blob). */
  uploadBlob (digest: Digest, opts: { replace?: boolean } = {}): void {
    this.init.writer.blob(digest, opts)
  }

  /**
   * The bucket's object of `digest` failed its digest (or a record object does not parse):
   * reported, counted, and for a blob written over once this node has the right bytes.
   */
  badBlob (digest: Digest, why: string): void {
    this.badBlobs.add(digest)
    this.bad(blobObjectKey(digest), why)
  }

  /** A body stopped mid-way, or a read failed: counted, and reads skip the bucket for a while. */
  failed (what: string, err: Error): void {
    this.init.stats.inc('s3_errors')
    const wasDown = this.isDown()
    this.downUntil = Date.now() + (this.init.downMs ?? BUCKET_DOWN_MS)
    if (!wasDown) {
      this.init.log.warn(
        { bucket: this.name, what, err: err.message, skipForMs: this.init.downMs ?? BUCKET_DOWN_MS },
        'bucket read failed; pulls go on to the upstream and skip the bucket for a while'
      )
    }
  }

  /** Reads skip the bucket until this passes (after a failure). */
  isDown (): boolean {
    return Date.now() < this.downUntil
  }

  private bad (key: string, why: string): void {
    this.init.stats.inc('s3_bad_objects')
    this.init.log.warn(
      { bucket: this.name, key, why },
      'bad object in the bucket: skipped (it is written over when this node has the right content)'
    )
  }

  private async read (key: string, options: AbortOptions): Promise<BucketObject | undefined> {
    if (this.isDown()) return undefined
    const signal = timeoutSignal(this.init.readTimeoutMs, options.signal)
    try {
      const object = await this.init.bucket.get(key, { signal })
      this.init.stats.inc(object === undefined ? 's3_misses' : 's3_hits')
      return object
    } catch (err) {
      if (options.signal?.aborted === true) throw options.signal.reason
      this.failed('GET', err as Error)
      return undefined
    }
  }
}

/** Aborts after `ms`, or with `outer`. */
function timeoutSignal (ms: number, outer: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(ms)
  return outer === undefined ? timeout : AbortSignal.any([timeout, outer])
}
