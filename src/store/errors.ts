export class StoreError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreError'
  }
}

/** The store could not be opened as configured (CACHE_DIR): the message says what to change. */
export class StoreOpenError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreOpenError'
  }
}

/**
 * The filesystem under CACHE_DIR has no room left (ENOSPC, EDQUOT) even after eviction: what
 * could not be written is served without being stored.
 */
export class StoreFullError extends StoreError {
  constructor (dir: string, options?: { cause?: unknown }) {
    super(`the filesystem of CACHE_DIR=${dir} is full: blobs are served without being stored until space returns; free space there, or set CACHE_MAX_SIZE below the free space of that filesystem`, options)
    this.name = 'StoreFullError'
  }
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
