import { open, rename, rm, mkdir, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { DigestVerifier, type Digest } from '../oci/digest.js'
import { StoreError, StoreUnavailableError, writeError } from './errors.js'

/**
 * Writes one blob: bytes go to a file in tmp/ while they are hashed; `commit` verifies the
 * digest, fsyncs, and renames into place. Until then nothing is visible under blobs/.
 */
export class BlobWriter {
  private verifier: DigestVerifier
  private written = 0
  private finished = false
  private verified = false

  constructor (
    private key: Digest,
    readonly tmpPath: string,
    /** CACHE_DIR, named in a StoreFullError. */
    private readonly storeDir: string,
    private readonly file: FileHandle,
    private readonly onFinish: () => void
  ) {
    this.verifier = new DigestVerifier(key)
  }

  /**
   * @throws StoreFullError when the filesystem has no room for a new file; StoreUnavailableError
   * when the process is out of file descriptors
   */
  static async create (digest: Digest, tmpPath: string, storeDir: string, onFinish: () => void): Promise<BlobWriter> {
    try {
      return new BlobWriter(digest, tmpPath, storeDir, await open(tmpPath, 'wx', 0o644), onFinish)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EMFILE' || code === 'ENFILE') throw new StoreUnavailableError(`a temporary file for ${digest}`, storeDir, err)
      throw writeError(err, storeDir)
    }
  }

  /** The digest the bytes must hash to (for a writer made without one, set by `keyByContent`). */
  get digest (): Digest {
    return this.key
  }

  /**
   * Makes the sha256 of everything written this writer's digest: for content whose digest is
   * not known before it is read (a download by URL). Call once every byte is written.
   */
  keyByContent (): Digest {
    if (this.finished) throw new StoreError(`keyByContent on ${this.key} after it was committed or aborted`)
    this.key = this.verifier.actual()
    this.verified = true
    return this.key
  }

  get bytesWritten (): number {
    return this.written
  }

  /**
   * The digest state over the bytes written so far: a copy the caller may go on hashing (the
   * rest of a blob served without being stored, see StoreFullError).
   */
  hashState (): DigestVerifier {
    return this.verifier.copy()
  }

  /**
   * Appends `chunk`, or several chunks in one vectored write (no copy into one buffer). A write
   * that fails leaves the writer as it was before the call (file length, digest state), so the
   * caller may try again once there is room.
   * @throws StoreFullError when the filesystem is full; the underlying error otherwise
   */
  async write (chunk: Uint8Array | Uint8Array[]): Promise<void> {
    if (this.finished) throw new StoreError(`write to ${this.digest} after it was committed or aborted`)
    const chunks = Array.isArray(chunk) ? chunk : [chunk]
    let total = 0
    for (const c of chunks) total += c.byteLength
    const before = this.verifier.copy()
    const writing = this.writeAt(chunks, total, this.written)
    // Hashed while the thread pool writes the same (read-only) buffers.
    for (const c of chunks) this.verifier.update(c)
    try {
      await writing
    } catch (err) {
      this.verifier = before
      await this.file.truncate(this.written).catch(() => {})
      throw writeError(err, this.storeDir)
    }
    this.written += total
  }

  /**
   * Writes bytes ahead of the end (a piece received out of order) without hashing them: they
   * count once `adopt` reaches them. `position` must be past the bytes written in order.
   * @throws StoreFullError when the filesystem is full; the underlying error otherwise
   */
  async writeAhead (position: number, chunks: Uint8Array[]): Promise<void> {
    if (this.finished) throw new StoreError(`write to ${this.digest} after it was committed or aborted`)
    if (position < this.written) throw new StoreError(`write ahead of ${this.digest} at ${position}, before its end ${this.written}`)
    let total = 0
    for (const c of chunks) total += c.byteLength
    try {
      await this.writeAt(chunks, total, position)
    } catch (err) {
      throw writeError(err, this.storeDir)
    }
  }

  /**
   * Counts bytes that `writeAhead` already put at the end as written in order: `chunks` are
   * those bytes (read back by the caller), hashed now.
   */
  adopt (chunks: Uint8Array[]): void {
    if (this.finished) throw new StoreError(`adopt into ${this.digest} after it was committed or aborted`)
    for (const c of chunks) {
      this.verifier.update(c)
      this.written += c.byteLength
    }
  }

  private async writeAt (chunks: Uint8Array[], total: number, position: number): Promise<void> {
    let done = (await this.file.writev(chunks, position)).bytesWritten
    // A short vectored write is rare (signals, full disk); finish it chunk by chunk.
    for (let i = 0, start = 0; done < total && i < chunks.length; start += (chunks[i] as Uint8Array).byteLength, i++) {
      const c = chunks[i] as Uint8Array
      if (start + c.byteLength <= done) continue
      let offset = done - start
      while (offset < c.byteLength) {
        const { bytesWritten } = await this.file.write(c, offset, c.byteLength - offset, position + start + offset)
        offset += bytesWritten
        done += bytesWritten
      }
    }
  }

  /**
   * Checks the digest of everything written; throws DigestMismatchError when it is not
   * `digest`. Done before the (slow) fsync so readers can be released as soon as it holds.
   */
  verify (source: string): void {
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
      throw writeError(err, this.storeDir)
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
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
