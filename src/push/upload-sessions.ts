import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import { OciError } from '../oci/errors.js'
import type { StoreKeeping, StoreReader, StoreWriter } from '../store/roles.js'
import type { BlobWriter } from '../store/writer.js'
import { systemClock, type Clock } from '../clock/clock.js'
import { MAX_UPLOAD_SESSIONS, UPLOAD_IDLE_MS, UPLOAD_SWEEP_MS } from './constants.js'

export interface UploadSessionsInit {
  store: Pick<StoreWriter, 'createWriter' | 'commit'> & Pick<StoreKeeping, 'keptBytes'> & Pick<StoreReader, 'maxSize'>
  /** Sessions open at once, at most (default MAX_UPLOAD_SESSIONS). */
  maxSessions?: number
  /** A session untouched this long expires (default UPLOAD_IDLE_MS). */
  idleMs?: number
  clock?: Clock
  log: Logger
}

interface Session {
  repo: string
  writer: BlobWriter
  touchedAt: number
  /** A PATCH or PUT is writing now: another one for the session is refused. */
  busy: boolean
}

/**
 * Blob upload sessions of the OCI distribution push API ("Pushing blobs": POST, PATCH, PUT).
 * Bytes go to a store writer without a digest as they arrive; the final PUT names the digest,
 * which must be the content's own before anything is committed. Sessions are bounded in number
 * and expire when abandoned, their temporary files removed.
 */
export class UploadSessions {
  private readonly sessions = new Map<string, Session>()
  private readonly clock: Clock
  private readonly sweeper: NodeJS.Timeout

  constructor (private readonly init: UploadSessionsInit) {
    this.clock = init.clock ?? systemClock
    this.sweeper = setInterval(() => {
      void this.sweep()
    }, UPLOAD_SWEEP_MS)
    this.sweeper.unref()
  }

  /**
   * Opens a session for `repo`; its id goes in the upload URL.
   * @throws OciError 429 when MAX_UPLOAD_SESSIONS are open
   */
  async start (repo: string): Promise<string> {
    await this.sweep()
    if (this.sessions.size >= (this.init.maxSessions ?? MAX_UPLOAD_SESSIONS)) {
      throw new OciError(
        429,
        'TOOMANYREQUESTS',
        `${this.sessions.size} uploads are open on this sidecar; finish or cancel some, or retry later`,
        undefined,
        { 'retry-after': '5' }
      )
    }
    const id = randomUUID()
    this.sessions.set(id, { repo, writer: await this.init.store.createWriter(), touchedAt: this.clock.now(), busy: false })
    return id
  }

  /** Bytes received so far; undefined when there is no such session for `repo`. */
  offset (repo: string, id: string): number | undefined {
    const s = this.sessions.get(id)
    return s === undefined || s.repo !== repo ? undefined : s.writer.bytesWritten
  }

  /**
   * Appends `body` to the session (a chunk of a chunked upload, or the whole blob). `start`, when
   * the client sent a Content-Range, must be the bytes received so far (OCI: 416 otherwise);
   * `length` (its Content-Length) is checked against the room left before a byte is read.
   * @returns the bytes received in all
   * @throws OciError 404 BLOB_UPLOAD_UNKNOWN, 416 BLOB_UPLOAD_INVALID; 507 DENIED when the upload
   * outgrows the room left (see `room`): the session is then ended and its bytes dropped
   */
  async append (
    repo: string,
    id: string,
    body: Readable,
    opts: { start?: number | undefined, length?: number | undefined } = {}
  ): Promise<number> {
    const s = this.session(repo, id)
    if (opts.start !== undefined && opts.start !== s.writer.bytesWritten) {
      throw new OciError(
        416,
        'BLOB_UPLOAD_INVALID',
        `this chunk starts at byte ${opts.start}, but the upload has ${s.writer.bytesWritten} bytes: send the chunk that starts there (GET the upload URL for its Range)`
      )
    }
    s.busy = true
    try {
      const room = await this.room(id)
      if (s.writer.bytesWritten + (opts.length ?? 0) > room) throw await this.tooLarge(id, s, room)
      for await (const chunk of body) {
        if (s.writer.bytesWritten + (chunk as Buffer).byteLength > room) throw await this.tooLarge(id, s, room)
        await s.writer.write(chunk as Buffer)
      }
    } finally {
      s.busy = false
      s.touchedAt = this.clock.now()
    }
    return s.writer.bytesWritten
  }

  /**
   * Bytes an upload may hold: CACHE_MAX_SIZE less what is kept against eviction (pushed content
   * within CACHE_LOCAL_TTL, which no eviction frees) and what the other open uploads hold.
   */
  async room (exceptId?: string): Promise<number> {
    let open = 0
    for (const [id, s] of this.sessions) if (id !== exceptId) open += s.writer.bytesWritten
    return this.init.store.maxSize - await this.init.store.keptBytes() - open
  }

  /** Ends a session that outgrew `room` (nothing stored is touched) and says why. */
  private async tooLarge (id: string, s: Session, room: number): Promise<OciError> {
    this.sessions.delete(id)
    await s.writer.abort()
    return new OciError(
      507,
      'DENIED',
      `the push does not fit: CACHE_MAX_SIZE leaves ${
        Math.max(0, room)
      } bytes for it (content pushed within CACHE_LOCAL_TTL is kept against eviction, and other uploads are open); raise CACHE_MAX_SIZE, lower CACHE_LOCAL_TTL, or push less. Nothing stored was removed`
    )
  }

  /**
   * Ends the session: the content must hash to `digest`, then it is committed to the store.
   * A wrong digest removes the session and stores nothing.
   * @throws OciError 404 BLOB_UPLOAD_UNKNOWN, 400 DIGEST_INVALID
   */
  async finish (repo: string, id: string, digest: Digest): Promise<number> {
    const s = this.session(repo, id)
    this.sessions.delete(id)
    const actual = s.writer.keyByContent()
    if (actual !== digest) {
      await s.writer.abort()
      throw new OciError(400, 'DIGEST_INVALID', `the uploaded content is ${actual}, not ${digest}; nothing was stored`)
    }
    const size = s.writer.bytesWritten
    await this.init.store.commit(s.writer, `push ${repo}`)
    return size
  }

  /** Cancels a session (DELETE of the upload URL). @throws OciError 404 BLOB_UPLOAD_UNKNOWN */
  async cancel (repo: string, id: string): Promise<void> {
    const s = this.session(repo, id)
    this.sessions.delete(id)
    await s.writer.abort()
  }

  get size (): number {
    return this.sessions.size
  }

  /** Aborts every session (shutdown). */
  async close (): Promise<void> {
    clearInterval(this.sweeper)
    const open = [...this.sessions.values()]
    this.sessions.clear()
    await Promise.all(open.map(async s => {
      await s.writer.abort()
    }))
  }

  private session (repo: string, id: string): Session {
    const s = this.sessions.get(id)
    if (s === undefined || s.repo !== repo) {
      throw new OciError(
        404,
        'BLOB_UPLOAD_UNKNOWN',
        `no upload ${id.slice(0, 64)} for ${repo}: it finished, was cancelled, or expired after ${
          Math.round((this.init.idleMs ?? UPLOAD_IDLE_MS) / 60_000)
        } idle minutes; start a new one with POST`
      )
    }
    if (s.busy) {
      throw new OciError(409, 'BLOB_UPLOAD_INVALID', `upload ${id} is receiving another request; send its chunks one after the other`)
    }
    return s
  }

  /** Abandoned sessions (untouched for idleMs) are removed with their files. */
  private async sweep (): Promise<void> {
    const cutoff = this.clock.now() - (this.init.idleMs ?? UPLOAD_IDLE_MS)
    for (const [id, s] of this.sessions) {
      if (s.busy || s.touchedAt > cutoff) continue
      this.sessions.delete(id)
      this.init.log.info({ repo: s.repo, upload: id, bytes: s.writer.bytesWritten }, 'abandoned upload expired')
      await s.writer.abort()
    }
  }
}
