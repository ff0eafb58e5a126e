import { P2pCacheError, EXIT_USAGE } from '../errors/p2p-cache-error.js'
export class StoreError extends P2pCacheError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The store could not be opened as configured (CACHE_DIR): the message says what to change. */
export class StoreOpenError extends P2pCacheError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, { ...options, exitCode: EXIT_USAGE })
  }
}

/**
 * The filesystem under CACHE_DIR has no room left (ENOSPC, EDQUOT) even after eviction: what
 * could not be written is served without being stored.
 */
export class StoreFullError extends StoreError {
  constructor (dir: string, options?: { cause?: unknown }) {
    super(
      `the filesystem of CACHE_DIR=${dir} is full: blobs are served without being stored until space returns; free space there, or set CACHE_MAX_SIZE below the free space of that filesystem`,
      options
    )
  }
}

/**
 * A blob file that exists could not be opened right now (out of file descriptors, an I/O error):
 * the record is kept, and the client is told to retry (503).
 */
export class StoreUnavailableError extends StoreError {
  constructor (what: string, dir: string, err: unknown) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    super(
      `cannot open ${what} in CACHE_DIR=${dir} (${code}): ${
        code === 'EMFILE' || code === 'ENFILE'
          ? 'the process is out of file descriptors; raise its open-file limit (ulimit -n, docker run --ulimit nofile=65536:65536) or lower CACHE_HTTP_MAX_CONNECTIONS'
          : "check the disk and the directory's permissions"
      }`,
      { cause: err }
    )
  }
}

/** What a failed write under CACHE_DIR=`dir` throws: StoreFullError when the filesystem is full, else `err` itself. */
export function writeError (err: unknown, dir: string): unknown {
  return isNoSpace(err) ? new StoreFullError(dir, { cause: err }) : err
}

/** Whether `err` is the kernel saying the filesystem (or the user's quota) is full. */
export function isNoSpace (err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code
    // classic-level reports LevelDB's IO errors by message only.
    if (code === 'ENOSPC' || code === 'EDQUOT' || /No space left on device|Disk quota exceeded/.test(e.message)) return true
  }
  return false
}
