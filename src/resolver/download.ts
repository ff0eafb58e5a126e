import { open, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { BlobStore } from '../store/blob-store.js'
import type { BlobRecord } from '../store/record.js'
import type { BlobWriter } from '../store/writer.js'
import { discard, type RegistryClient } from '../upstream/registry-client.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import type { Stats } from '../metrics/stats.js'

const READ_CHUNK = 256 * 1024
const WRITE_BATCH = 1024 * 1024

/**
 * One upstream fetch of a blob into the store. Any number of clients read it while it arrives
 * (from the temporary file, each at its own pace), so concurrent pulls of a digest cost one
 * upstream copy. Readers never get the last byte before the digest is verified: a mismatch
 * aborts them with an incomplete response instead of a complete wrong one.
 */
export class BlobDownload {
  /** Resolves with the size (if announced) once the upstream answered 2xx. */
  readonly ready: Promise<{ size: number | undefined }>
  readonly done: Promise<BlobRecord>
  size: number | undefined
  written = 0
  /** The digest matched: readers may have the last byte (the file may not be durable yet). */
  verified = false
  error: Error | undefined
  private readFile: FileHandle | undefined
  private refs = 1
  private waiters: Array<() => void> = []

  constructor (
    readonly digest: Digest,
    private readonly repo: string,
    private readonly client: RegistryClient,
    private readonly store: BlobStore,
    private readonly stats: Stats,
    private readonly log: Logger
  ) {
    let readyResolve!: (v: { size: number | undefined }) => void
    let readyReject!: (e: Error) => void
    this.ready = new Promise((resolve, reject) => { readyResolve = resolve; readyReject = reject })
    this.ready.catch(() => {})
    this.done = this.run(readyResolve).catch((err: Error) => {
      this.error = err
      readyReject(err)
      throw err
    }).finally(() => {
      this.notify()
      this.release()
    })
    this.done.catch(() => {})
  }

  /**
   * Takes a hold on the temporary file for one response; false once the download is over and
   * the file closed (the blob is then in the store, or failed). Pair with `release`.
   */
  retain (): boolean {
    if (this.refs === 0) return false
    this.refs++
    return true
  }

  release (): void {
    if (--this.refs === 0) void this.readFile?.close().catch(() => {})
  }

  /** A stream of bytes [start, end) of the blob as they arrive; the caller holds a `retain`. */
  reader (start: number, end: number | undefined): Readable {
    let pos = start
    let pumping = false
    const pump = async (stream: Readable): Promise<void> => {
      if (pumping) return
      pumping = true
      try {
        for (;;) {
          const stop = end ?? this.size
          if (this.error !== undefined) { stream.destroy(this.error); return }
          if (stop !== undefined && pos >= stop) {
            if (this.verified) { stream.push(null); return }
          } else if (this.verified && pos >= this.written) {
            stream.push(null)
            return
          }
          // Hold back the final byte of the requested span until the digest is verified.
          const available = Math.min(this.written, stop ?? Infinity)
          const limit = this.verified ? available : available - 1
          if (pos < limit && this.readFile !== undefined) {
            const n = Math.min(limit - pos, READ_CHUNK)
            const buf = Buffer.allocUnsafe(n)
            const { bytesRead } = await this.readFile.read(buf, 0, n, pos)
            pos += bytesRead
            if (stream.destroyed) return
            if (!stream.push(bytesRead === n ? buf : buf.subarray(0, bytesRead))) return
          } else {
            await new Promise<void>(resolve => this.waiters.push(resolve))
          }
        }
      } catch (err) {
        stream.destroy(err as Error)
      } finally {
        pumping = false
      }
    }
    return new Readable({
      highWaterMark: READ_CHUNK,
      read () { void pump(this) }
    })
  }

  private async run (readyResolve: (v: { size: number | undefined }) => void): Promise<BlobRecord> {
    const res = await this.client.sendOk('GET', this.repo, `/v2/${this.repo}/blobs/${this.digest}`, {})
    const length = res.headers['content-length']
    this.size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined
    let writer: BlobWriter | undefined
    try {
      writer = await this.store.createWriter(this.digest)
      this.readFile = await open(writer.tmpPath, 'r')
      readyResolve({ size: this.size })
      // Chunks already buffered are written together (up to WRITE_BATCH): one awaited write
      // per ~64 KiB chunk leaves the thread pool, not the network, as the bottleneck. A chunk
      // that arrives alone is written at once so readers see it without delay.
      let batch: Buffer[] = []
      let batchBytes = 0
      for await (const chunk of res.body) {
        const buf = chunk as Buffer
        batch.push(buf)
        batchBytes += buf.byteLength
        this.stats.inc('bytes_from_upstream', buf.byteLength)
        if (batchBytes < WRITE_BATCH && res.body.readableLength > 0) continue
        await writer.write(batch.length === 1 ? buf : Buffer.concat(batch, batchBytes))
        this.written += batchBytes
        batch = []
        batchBytes = 0
        this.notify()
      }
      if (this.size !== undefined && this.written !== this.size) {
        throw new UpstreamUnavailableError(this.client.name, `blob ${this.digest} truncated at ${this.written} of ${this.size} bytes`)
      }
      writer.verify(`upstream ${this.client.name}`)
      this.verified = true
      this.notify()
      const record = await this.store.commit(writer, `upstream ${this.client.name}`)
      this.log.info({ digest: this.digest, size: record.size, upstream: this.client.name }, 'blob stored')
      return record
    } catch (err) {
      discard(res.body)
      await writer?.abort().catch(() => {})
      throw err
    }
  }

  private notify (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}
