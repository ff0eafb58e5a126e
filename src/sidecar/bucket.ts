import type { Logger } from 'pino'
import { Bucket } from '../bucket/bucket.js'
import { BucketTier } from '../bucket/bucket-tier.js'
import { BucketWriter } from '../bucket/bucket-writer.js'
import type { Config } from '../config/options.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { Stats } from '../metrics/stats.js'
import type { BlobStore } from '../store/blob-store.js'

/** The bucket tier: the client, its upload queue, and the tier reading through both. */
export interface BucketParts {
  bucket: Bucket
  writer: BucketWriter
  tier: BucketTier
}

/** The bucket tier when CACHE_S3_URL is set (its client registered with `life`), else undefined. */
export function startBucket (config: Config, life: Lifecycle, store: BlobStore, stats: Stats, log: Logger): BucketParts | undefined {
  if (config.s3Url === undefined) return undefined
  const bucket = new Bucket({ url: config.s3Url, endpoint: config.s3Endpoint, forcePathStyle: config.s3ForcePathStyle })
  life.add('bucket', () => {
    bucket.close()
  })
  const writer = new BucketWriter({ bucket, store, stats, log })
  const tier = new BucketTier({ bucket, writer, stats, log, readTimeoutMs: config.s3Timeout })
  log.info(
    { bucket: bucket.name, endpoint: config.s3Endpoint ?? 'AWS S3', timeoutMs: config.s3Timeout },
    'bucket tier on: content fetched from upstreams and pushed here is uploaded in the background'
  )
  return { bucket, writer, tier }
}
