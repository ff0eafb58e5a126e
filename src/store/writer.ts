import { open, rename, rm, mkdir, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DigestVerifier, type Digest } from '../oci/digest.js'
import { StoreError } from './errors.js'

/**
 * Writes one blob: bytes go to a file in tmp/ while they are hashed; `commit` verifies the
 * digest, fsyncs, and renames into place. Until then nothing is visible under blobs/.
 */
export class BlobWriter {
  private readonly verifier: DigestVerifier
  private written = 0
  private finished = false
  private verified = false
  /** A failed write leaves the hash ahead of the file: nothing may verify after it. */
  private failed: Error | undefined

  constructor (
    readonly digest: Digest,
    readonly tmpPath: string,
    private readonly file: FileHandle,
    private readonly onFinish: () => void
  ) {
    this.verifier = new DigestVerifier(digest)
  }

  static async create (digest: Digest, tmpPath: string, onFinish: () => void): Promise<BlobWriter> {
    const file = await open(tmpPath, 'wx', 0o644)
    return new BlobWriter(digest, tmpPath, file, onFinish)
  }

  get bytesWritten (): number {
    return this.written
  }

  /** Appends `chunk`, or several chunks in one vectored write (no copy into one buffer). */
  async write (chunk: Uint8Array | Uint8Array[]): Promise<void> {
    if (this.finished) throw new StoreError(`write to ${this.digest} after it was committed or aborted`)
    if (this.failed !== undefined) throw this.failed
    const chunks = Array.isArray(chunk) ? chunk : [chunk]
    let total = 0
    for (const c of chunks) {
      this.verifier.update(c)
      total += c.byteLength
    }
    try {
      let done = (await this.file.writev(chunks, this.written)).bytesWritten
      // A short vectored write is rare (signals, full disk); finish it chunk by chunk.
      for (let i = 0, start = 0; done < total && i < chunks.length; start += (chunks[i] as Uint8Array).byteLength, i++) {
        const c = chunks[i] as Uint8Array
        if (start + c.byteLength <= done) continue
        let offset = done - start
        while (offset < c.byteLength) {
          const { bytesWritten } = await this.file.write(c, offset, c.byteLength - offset, this.written + start + offset)
          offset += bytesWritten
          done += bytesWritten
        }
      }
    } catch (err) {
      this.failed = err as Error
      throw err
    }
    this.written += total
  }

  /**
   * Checks the digest of everything written; throws DigestMismatchError when it is not
   * `digest`. Done before the (slow) fsync so readers can be released as soon as it holds.
   */
  verify (source: string): void {
    if (this.failed !== undefined) throw this.failed
    if (this.verified) return
    this.verifier.verify(source)
    this.verified = true
  }

  /**
   * Verifies (unless `verify` already did) and moves the file to `finalPath`. Throws DigestMismatchError (and removes the
   * temporary file) when the content is not `digest`.
   */
  async commit (finalPath: string, source: string): Promise<{ size: number, mtimeMs: number }> {
    this.finish()
    try {
      this.verify(source)
      await this.file.sync()
      const { mtimeMs } = await this.file.stat()
      await this.file.close()
      await mkdir(dirname(finalPath), { recursive: true })
      await rename(this.tmpPath, finalPath)
      await syncDir(dirname(finalPath))
      return { size: this.written, mtimeMs }
    } catch (err) {
      await this.file.close().catch(() => {})
      await rm(this.tmpPath, { force: true })
      throw err
    }
  }

  async abort (): Promise<void> {
    if (this.finished) return
    this.finish()
    await this.file.close().catch(() => {})
    await rm(this.tmpPath, { force: true })
  }

  private finish (): void {
    if (this.finished) throw new StoreError(`blob writer for ${this.digest} finished twice`)
    this.finished = true
    this.onFinish()
  }
}

/** The rename is durable only once the directory entry is on disk too. */
async function syncDir (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try { await handle.sync() } finally { await handle.close() }
}
