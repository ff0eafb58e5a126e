/** The Twirp service of the Actions cache, v2 (`github.actions.results.api.v1.CacheService`). */
export const TWIRP_SERVICE = 'github.actions.results.api.v1.CacheService'
/**
 * Upload and download URLs this sidecar hands out (`signed_upload_url`, `signed_download_url`).
 * Azure's SDK wants at least `/<account>/<container>` on an IP or localhost host.
 */
export const UPLOAD_PREFIX = '/actions-cache/uploads/'
export const DOWNLOAD_PREFIX = '/actions-cache/blobs/'
/** An upload not finalized for this long expires; its blocks are removed. */
export const CACHE_UPLOAD_IDLE_MS = 30 * 60_000
/** Uploads open at once, at most. */
export const MAX_CACHE_UPLOADS = 256
/** Blocks one upload may stage (Azure allows 50,000; 1 MiB blocks of BuildKit make 10 GiB). */
export const MAX_BLOCKS = 50_000
/** A key is at most 512 characters (GitHub's limit), a version 512. */
export const MAX_KEY_CHARS = 512
/** Twirp request bodies are small JSON. */
export const MAX_TWIRP_BODY = 64 * 1024
/** Restore keys one lookup tries, at most (GitHub: 10 keys with the primary one). */
export const MAX_RESTORE_KEYS = 10
/** Entries of one (scope, version) listed to match a restore-key prefix, at most. */
export const MAX_PREFIX_CANDIDATES = 200
/** A finalized entry's announcement is waited for this long at most before FinalizeCacheEntryUpload answers. */
export const ANNOUNCE_WAIT_MS = 5_000
