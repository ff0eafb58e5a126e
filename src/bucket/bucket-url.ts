/** `s3://<bucket>/<prefix>` as CACHE_S3_URL states it. */
export interface BucketUrl {
  bucket: string
  /** Every object key starts with it: empty, or ending in `/`. */
  prefix: string
}

/**
 * Parses CACHE_S3_URL: `s3://bucket` or `s3://bucket/some/prefix` (a trailing slash is optional).
 * Bucket names follow S3's rules for new buckets (3–63 characters: lower-case letters, digits,
 * dots and hyphens, starting and ending with a letter or digit).
 * @returns undefined when the text is not such a URL
 */
export function parseBucketUrl (text: string): BucketUrl | undefined {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(text.trim())
  if (m === null) return undefined
  const bucket = m[1] as string
  const path = (m[2] ?? '').replace(/\/+$/, '')
  if (bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return undefined
  // Keys are plain: no empty segments, no dot segments, no control characters.
  // oxlint-disable-next-line no-control-regex -- control characters are what is refused
  if (path !== '' && (path.split('/').some(s => s === '' || s === '.' || s === '..') || /[\u0000-\u001f\u007f\\]/u.test(path))) {
    return undefined
  }
  if (path.length > 512) return undefined
  return { bucket, prefix: path === '' ? '' : `${path}/` }
}

/** The URL again, for logs and diagnose (no credential is ever part of it). */
export function formatBucketUrl (url: BucketUrl): string {
  return `s3://${url.bucket}/${url.prefix}`
}
