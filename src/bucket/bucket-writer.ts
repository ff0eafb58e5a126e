import type { AbortOptions } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { StoreReader } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import type { Bucket, BucketHead } from './bucket.js'
import { Backoff } from '../clock/backoff.js'
import { blobObjectKey } from './object-keys.js'
import {
  UPLOAD_ATTEMPTS,
  UPLOAD_CONCURRENCY,
  UPLOAD_MIN_RATE,
  UPLOAD_QUEUE_MAX,
  UPLOAD_REQUEST_TIMEOUT_MS,
  UPLOAD_RETRY_FIRST_MS,
  UPLOAD_RETRY_MAX_MS
} from './constants.js'

/** The queue-full warning is logged at most this often. */
const FULL_WARN_EVERY_MS = 60_000

/** One object to write: a stored blob by digest, or a small record. */
type UploadJob =
  | { key: string, what: 'blob', digest: Digest, replace: boolean, tries: number, backoff?: Backoff }
  | {
    key: string
    what: 'record'
    body: Buffer
    metadata: Record<string, string>
    unlessSame: ((head: BucketHead) => boolean) | undefined
    after: Digest[]
    tries: number
    backoff?: Backoff
  }

/** How a record is written: its user metadata, and when to skip the write (see BucketWriter.record). */
export interface RecordWriteOptions {
  metadata?: Record<string, string>
  unlessSame?: (head: BucketHead) => boolean
  /**
   * Blobs the record points at: it is written only once their uploads queued here are over (a
   * pushed tag lands after its image), or dropped with them.
   */
  after?: Digest[]
}

export interface BucketWriterInit {
  bucket: Pick<Bucket, 'head' | 'put'>
  store: Pick<StoreReader, 'openRead'>
  stats: Stats
  log: Logger
  /** Overrides of the constants (unit tests). */
  requestTimeoutMs?: number
  concurrency?: number
  queueMax?: number
  attempts?: number
  retryFirstMs?: number
}

/**
 * Writes to the bucket in the background (issue 27, point 3): a bounded queue (UPLOAD_QUEUE_MAX;
 * one entry per object key, so a digest queued twice is written once), UPLOAD_CONCURRENCY
 * uploads at once, `HEAD` first so an object already there is not written again. A failed upload
 * is tried again after a pause that doubles (UPLOAD_RETRY_FIRST_MS up to UPLOAD_RETRY_MAX_MS)
 * and dropped after UPLOAD_ATTEMPTS tries; drops are counted (s3_uploads_dropped), never fatal.
 * Each request has a deadline (see `deadline`), so a bucket that hangs does not hold a slot.
 */
export class BucketWriter {
  private readonly waiting = new Map<string, UploadJob>()
  private readonly retrying = new Map<string, NodeJS.Timeout>()
  private readonly running = new Map<string, AbortController>()
  /** A newer value of a record being written or retried: written after it. */
  private readonly again = new Map<string, UploadJob>()
  private closed = false
  private idle: (() => void) | undefined
  private fullWarnedAt = -Infinity

  constructor (private readonly init: BucketWriterInit) {}

  /** Uploads waiting, retrying and running. */
  get depth (): number {
    return this.waiting.size + this.retrying.size + this.running.size
  }

  /**
   * Uploads stored blob `digest` (a manifest with its media type as Content-Type) unless the
   * bucket has it. `replace`: the bucket's object failed its digest, so it is written over.
   */
  blob (digest: Digest, opts: { replace?: boolean } = {}): void {
    this.add({ key: blobObjectKey(digest), what: 'blob', digest, replace: opts.replace === true, tries: 0 })
  }

  /**
   * Writes `value` as JSON under `key`. `unlessSame`: HEAD first, and skip the write when it
   * says the object there already holds this value (user metadata set with `metadata`).
   */
  record (key: string, value: unknown, opts: RecordWriteOptions = {}): void {
    this.add({
      key,
      what: 'record',
      body: Buffer.from(JSON.stringify(value)),
      metadata: opts.metadata ?? {},
      unlessSame: opts.unlessSame,
      after: opts.after ?? [],
      tries: 0
    })
  }

  /**
   * Shutdown: what is running gets `graceMs` to finish, then is aborted; what waits is dropped
   * (counted). Later writes are ignored.
   */
  async drain (graceMs: number): Promise<void> {
    this.closed = true
    for (const timer of this.retrying.values()) clearTimeout(timer)
    const dropped = this.waiting.size + this.retrying.size
    if (dropped > 0) {
      this.init.stats.inc('s3_uploads_dropped', dropped)
      this.init.log.warn({ dropped }, 'shutting down: uploads to the bucket not started are dropped')
    }
    this.waiting.clear()
    this.retrying.clear()
    this.again.clear()
    if (this.running.size === 0) return
    const done = new Promise<void>(resolve => {
      this.idle = resolve
    })
    const timer = setTimeout(() => {
      for (const c of this.running.values()) c.abort(new Error('shutting down'))
    }, graceMs)
    await done
    clearTimeout(timer)
  }

  private add (job: UploadJob): void {
    if (this.closed) return
    if (job.what === 'record' && this.pending(job.key)) {
      // The newest value of a record wins: it replaces the one waiting, or follows the one in flight.
      if (this.waiting.has(job.key)) this.waiting.set(job.key, job)
      else this.again.set(job.key, job)
      return
    }
    if (this.pending(job.key)) return
    if (this.depth >= (this.init.queueMax ?? UPLOAD_QUEUE_MAX)) {
      this.init.stats.inc('s3_uploads_dropped')
      // Once a minute at most: a bucket slower than the fetches drops many in a row.
      if (Date.now() - this.fullWarnedAt >= FULL_WARN_EVERY_MS) {
        this.fullWarnedAt = Date.now()
        this.init.log.warn(
          { key: job.key, queued: this.depth },
          'bucket upload queue full: uploads dropped (the bucket is slower than what this node fetches; s3_uploads_dropped counts them)'
        )
      }
      return
    }
    this.waiting.set(job.key, job)
    this.pump()
  }

  private pump (): void {
    const concurrency = this.init.concurrency ?? UPLOAD_CONCURRENCY
    for (const [key, job] of this.waiting) {
      if (this.running.size >= concurrency) return
      if (job.what === 'record' && job.after.some(d => this.pending(blobObjectKey(d)))) continue
      this.waiting.delete(key)
      const controller = new AbortController()
      this.running.set(key, controller)
      void this.run(job, { signal: controller.signal }).finally(() => {
        this.running.delete(key)
        const next = this.retrying.has(key) ? undefined : this.again.get(key)
        if (next !== undefined) {
          this.again.delete(key)
          this.add(next)
        }
        if (this.closed && this.running.size === 0) this.idle?.()
        else this.pump()
      })
    }
  }

  /** Whether an upload of `key` is queued here and not over. */
  private pending (key: string): boolean {
    return this.waiting.has(key) || this.running.has(key) || this.retrying.has(key)
  }

  private async run (job: UploadJob, options: Required<AbortOptions>): Promise<void> {
    const { stats, log } = this.init
    try {
      const bytes = job.what === 'blob' ? await this.putBlob(job, options) : await this.putRecord(job, options)
      if (bytes !== undefined) {
        stats.inc('s3_uploads')
        stats.inc('s3_bytes_written', bytes)
        log.debug({ key: job.key, bytes }, 'written to the bucket')
      }
    } catch (err) {
      stats.inc('s3_errors')
      const tries = job.tries + 1
      if (this.closed || tries >= (this.init.attempts ?? UPLOAD_ATTEMPTS)) {
        stats.inc('s3_uploads_dropped')
        log.warn({ key: job.key, tries, err: (err as Error).message }, 'bucket upload dropped')
        this.dropDependents(job.key)
        return
      }
      const backoff = job.backoff ?? new Backoff(this.init.retryFirstMs ?? UPLOAD_RETRY_FIRST_MS, UPLOAD_RETRY_MAX_MS)
      const pause = backoff.next()
      log.info({ key: job.key, tries, retryInMs: Math.round(pause), err: (err as Error).message }, 'bucket upload failed; trying again')
      const timer = setTimeout(() => {
        this.retrying.delete(job.key)
        // A newer value of the record, if one came meanwhile, replaces the one that failed.
        const next = this.again.get(job.key)
        this.again.delete(job.key)
        this.add(next ?? { ...job, tries, backoff })
      }, pause)
      timer.unref()
      this.retrying.set(job.key, timer)
    }
  }

  /** Records waiting for a blob whose upload was dropped: dropped too (the record would point at nothing). */
  private dropDependents (key: string): void {
    for (const [k, job] of this.waiting) {
      if (job.what !== 'record' || !job.after.some(d => blobObjectKey(d) === key)) continue
      this.waiting.delete(k)
      this.init.stats.inc('s3_uploads_dropped')
      this.init.log.warn({ key: k, blob: key }, 'bucket record dropped: an upload it points at was dropped')
    }
  }

  /** The blob's bytes when written; undefined when the bucket had it or the store no longer does. */
  private async putBlob (job: Extract<UploadJob, { what: 'blob' }>, options: Required<AbortOptions>): Promise<number | undefined> {
    const { signal } = options
    const { bucket, store } = this.init
    if (!job.replace && await bucket.head(job.key, { signal: this.deadline(signal, 0) }) !== undefined) return undefined
    const handle = await store.openRead(job.digest)
    // Evicted before its turn: a later fetch of it uploads it then.
    if (handle === undefined) return undefined
    try {
      await bucket.put(job.key, handle.stream(), {
        contentType: handle.record.mediaType ?? 'application/octet-stream',
        sha256: job.digest.slice('sha256:'.length),
        signal: this.deadline(signal, handle.record.size)
      })
      return handle.record.size
    } finally {
      await handle.release()
    }
  }

  private async putRecord (job: Extract<UploadJob, { what: 'record' }>, options: Required<AbortOptions>): Promise<number | undefined> {
    const { signal } = options
    const { bucket } = this.init
    if (job.unlessSame !== undefined) {
      const head = await bucket.head(job.key, { signal: this.deadline(signal, 0) })
      if (head !== undefined && job.unlessSame(head)) return undefined
    }
    await bucket.put(job.key, job.body, {
      contentType: 'application/json',
      metadata: job.metadata,
      signal: this.deadline(signal, job.body.byteLength)
    })
    return job.body.byteLength
  }

  /**
   * `signal`, or the end of the time a request sending `bytes` may take: UPLOAD_REQUEST_TIMEOUT_MS
   * plus the bytes at UPLOAD_MIN_RATE (a bucket that hangs frees its upload slot).
   */
  private deadline (signal: AbortSignal, bytes: number): AbortSignal {
    const ms = (this.init.requestTimeoutMs ?? UPLOAD_REQUEST_TIMEOUT_MS) + bytes / UPLOAD_MIN_RATE * 1000
    return AbortSignal.any([signal, AbortSignal.timeout(Math.ceil(ms))])
  }
}
