/** A bucket read that has not answered (headers, or the next bytes of a body) in this long is given up for the upstream (CACHE_S3_TIMEOUT). */
export const DEFAULT_READ_TIMEOUT_MS = 5_000

/** After a bucket read failed (not a 404), reads skip the bucket this long: an outage costs one timeout, not one per blob. */
export const BUCKET_DOWN_MS = 30_000

/** Uploads running at once: the bucket is a background tier and must not take a runner's uplink. */
export const UPLOAD_CONCURRENCY = 2

/** Uploads waiting at most; more are dropped (counted as s3_uploads_dropped). */
export const UPLOAD_QUEUE_MAX = 1_000

/** A bucket request of an upload may take this long, plus its bytes at UPLOAD_MIN_RATE. */
export const UPLOAD_REQUEST_TIMEOUT_MS = 30_000
/** The slowest a body may be sent, in bytes per second (1 MiB/s) before the request is given up. */
export const UPLOAD_MIN_RATE = 1024 * 1024

/** Tries of one upload before it is dropped. */
export const UPLOAD_ATTEMPTS = 5

/** The pause before the second try, doubling up to UPLOAD_RETRY_MAX_MS (with jitter). */
export const UPLOAD_RETRY_FIRST_MS = 1_000
export const UPLOAD_RETRY_MAX_MS = 60_000

/** Multipart part size: S3 allows at most 10,000 parts, so 16 MiB parts cover blobs up to 156 GiB. */
export const PART_SIZE = 16 * 1024 * 1024

/** Parts of one multipart upload in flight at once. */
export const PART_CONCURRENCY = 2

/** The largest record object read back (tags, pushed tags, Actions cache entries are a few hundred bytes). */
export const MAX_RECORD_BYTES = 64 * 1024

/** A tag that resolves to the same digest is written again after this long, so a lifecycle rule does not expire a tag in use. */
export const TAG_REWRITE_MS = 24 * 60 * 60 * 1000

/** At shutdown, uploads in flight get this long to finish (inside docker stop's 10 s, next to the push handoff). */
export const UPLOAD_DRAIN_MS = 5_000

/** Names listed from the bucket for one group (tags/list, restore-key prefixes), at most. */
export const MAX_LISTED = 1_000

/** The region used when the SDK's loaders find none (S3-compatible stores often need none). */
export const FALLBACK_REGION = 'us-east-1'

/** A digest whose object failed verification is not read from the bucket again for this long (it is written over meanwhile). */
export const BAD_OBJECT_SKIP_MS = 10 * 60 * 1000
