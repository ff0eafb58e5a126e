import type { Readable } from 'node:stream'
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
  type S3ClientConfig
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import type { AbortOptions } from '@libp2p/interface'
import { formatBucketUrl, type BucketUrl } from './bucket-url.js'
import { FALLBACK_REGION, PART_CONCURRENCY, PART_SIZE } from './constants.js'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/** A bucket request that failed: the operation, the key, and what to check. Never carries a credential. */
export class BucketError extends P2pCacheError {
  constructor (
    readonly op: string,
    readonly key: string,
    /** The HTTP status of the answer; undefined when none came (unreachable, timed out). */
    readonly status: number | undefined,
    message: string
  ) {
    super(`${op} ${key}: ${message}`, { httpStatus: 502 })
  }
}

export interface BucketInit {
  url: BucketUrl
  /** CACHE_S3_ENDPOINT: an S3-compatible store (MinIO, Ceph RGW, R2, GCS interop); undefined = AWS. */
  endpoint?: string | undefined
  /** CACHE_S3_FORCE_PATH_STYLE: `endpoint/bucket/key` instead of `bucket.endpoint/key`. */
  forcePathStyle: boolean
}

/** An object being read: its size, stated type, user metadata, and the body (the caller consumes or destroys it). */
export interface BucketObject {
  size: number
  contentType: string | undefined
  metadata: Record<string, string>
  body: Readable
}

/** What HEAD says of an object. */
export interface BucketHead {
  size: number
  lastModified: Date | undefined
  metadata: Record<string, string>
}

export interface PutOptions extends AbortOptions {
  contentType?: string
  metadata?: Record<string, string>
  /**
   * The body's sha256 (hex) when it is known (a blob's digest): a body sent in one request is
   * signed with it instead of being hashed again (SigV4's x-amz-content-sha256).
   */
  sha256?: string
}

/** SigV4's header for the payload's hash, and its value for a payload that is not signed. */
const PAYLOAD_HASH_HEADER = 'x-amz-content-sha256'
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'

/**
 * CACHE_S3_URL through the official SDK: credentials, region and every `AWS_*` setting come from
 * the SDK's own loaders (environment, shared profile, instance and pod roles), its defaults are
 * kept for real S3, and only the endpoint and path style are set from the sidecar's options. A
 * region is needed to sign: when the loaders find none, us-east-1 (what S3-compatible stores take).
 * Keys are relative to the URL's prefix.
 */
export class Bucket {
  readonly name: string
  private readonly client: S3Client
  /** Object key → the sha256 of the body being put in one request (see PutOptions.sha256). */
  private readonly payloadHashes = new Map<string, string>()

  constructor (private readonly init: BucketInit) {
    this.name = formatBucketUrl(init.url)
    const config: S3ClientConfig = {
      region: async () => await sdkRegion() ?? FALLBACK_REGION,
      ...(init.endpoint !== undefined ? { endpoint: init.endpoint } : {}),
      ...(init.forcePathStyle ? { forcePathStyle: true } : {})
    }
    this.client = new S3Client(config)
    // The SDK hashes every buffered body for SigV4: a second sha256 of each byte uploaded (the
    // store verified it already, and every read from the bucket is verified by digest). A blob
    // put in one request is signed with its digest; a multipart part is sent UNSIGNED-PAYLOAD,
    // which S3 and the S3-compatible stores take (the transport is TLS for AWS).
    this.client.middlewareStack.add((next, context) => async args => {
      const request = args.request as { headers?: Record<string, string> }
      const key = (args.input as { Key?: string }).Key
      const known = context.commandName === 'PutObjectCommand' && key !== undefined ? this.payloadHashes.get(key) : undefined
      if (request.headers !== undefined && (known !== undefined || context.commandName === 'UploadPartCommand')) {
        request.headers[PAYLOAD_HASH_HEADER] = known ?? UNSIGNED_PAYLOAD
      }
      return await next(args)
    }, { step: 'build', name: 'p2pCachePayloadHash' })
  }

  /**
   * GetObject `key`: resolves once the answer's headers are in (the body follows as it is read).
   * @returns undefined when there is no such object (404)
   * @throws BucketError for any other answer or none (the signal's timeout included)
   */
  async get (key: string, options: AbortOptions = {}): Promise<BucketObject | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.init.url.bucket, Key: this.key(key) }), {
        abortSignal: options.signal
      })
      const body = out.Body as Readable | undefined
      if (body === undefined) throw new BucketError('GET', key, 200, 'the answer had no body')
      return { size: out.ContentLength ?? 0, contentType: out.ContentType, metadata: out.Metadata ?? {}, body }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw bucketError('GET', key, err, options.signal)
    }
  }

  /**
   * HeadObject `key`. @returns undefined when there is no such object
   * @throws BucketError for any other answer or none
   */
  async head (key: string, options: AbortOptions = {}): Promise<BucketHead | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.init.url.bucket, Key: this.key(key) }), {
        abortSignal: options.signal
      })
      return { size: out.ContentLength ?? 0, lastModified: out.LastModified, metadata: out.Metadata ?? {} }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw bucketError('HEAD', key, err, options.signal)
    }
  }

  /**
   * Writes `body` under `key`: one PutObject, or a multipart upload in PART_SIZE parts for a
   * larger body (lib-storage; a failed multipart upload is aborted).
   * @throws BucketError
   */
  async put (key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.init.url.bucket,
        Key: this.key(key),
        Body: body,
        ContentType: options.contentType ?? 'application/octet-stream',
        ...(options.metadata !== undefined ? { Metadata: options.metadata } : {})
      },
      partSize: PART_SIZE,
      queueSize: PART_CONCURRENCY,
      leavePartsOnError: false
    })
    const abort = (): void => {
      void upload.abort().catch(() => {})
    }
    options.signal?.addEventListener('abort', abort, { once: true })
    if (options.sha256 !== undefined) this.payloadHashes.set(this.key(key), options.sha256)
    try {
      await upload.done()
    } catch (err) {
      throw bucketError('PUT', key, err, options.signal)
    } finally {
      options.signal?.removeEventListener('abort', abort)
      this.payloadHashes.delete(this.key(key))
    }
  }

  /**
   * Keys under `prefix` (relative, in key order), at most `limit`, with ListObjectsV2 (needs
   * s3:ListBucket on the prefix).
   * @throws BucketError
   */
  async list (prefix: string, limit: number, options: AbortOptions = {}): Promise<string[]> {
    const keys: string[] = []
    let token: string | undefined
    try {
      do {
        const out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.init.url.bucket,
            Prefix: this.key(prefix),
            MaxKeys: Math.min(1000, limit - keys.length),
            ...(token !== undefined ? { ContinuationToken: token } : {})
          }),
          { abortSignal: options.signal }
        )
        for (const o of out.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key.slice(this.init.url.prefix.length))
        token = out.IsTruncated === true ? out.NextContinuationToken : undefined
      } while (token !== undefined && keys.length < limit)
    } catch (err) {
      throw bucketError('LIST', prefix, err, options.signal)
    }
    return keys
  }

  /**
   * The bucket's clock against this host's, in ms (positive: the bucket is ahead), from the Date
   * header of a HEAD of `key` (whatever its status). S3 refuses requests signed more than
   * 15 minutes off.
   * @throws BucketError when no answer came
   */
  async clockSkewMs (key: string, options: AbortOptions = {}): Promise<number> {
    const command = new HeadObjectCommand({ Bucket: this.init.url.bucket, Key: this.key(key) })
    let skew: number | undefined
    // The raw answer, before the SDK turns a 404 or 403 into an error.
    command.middlewareStack.add(next => async args => {
      const out = await next(args)
      const date = (out.response as { headers?: Record<string, string> }).headers?.date
      if (date !== undefined && !Number.isNaN(Date.parse(date))) skew = Date.parse(date) - Date.now()
      return out
    }, { step: 'deserialize', priority: 'low' })
    try {
      await this.client.send(command, { abortSignal: options.signal })
    } catch (err) {
      if (skew === undefined) throw bucketError('HEAD', key, err, options.signal)
    }
    if (skew === undefined) throw new BucketError('HEAD', key, undefined, 'the answer had no Date header')
    return skew
  }

  close (): void {
    this.client.destroy()
  }

  private key (key: string): string {
    return `${this.init.url.prefix}${key}`
  }
}

/** The region the SDK's loaders find (AWS_REGION, the shared profile...), or undefined. */
async function sdkRegion (): Promise<string | undefined> {
  const probe = new S3Client({})
  try {
    return await probe.config.region()
  } catch {
    return undefined
  } finally {
    probe.destroy()
  }
}

function isNotFound (err: unknown): boolean {
  return err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NoSuchKey' || err.name === 'NotFound')
}

/** A BucketError for `err`, with a hint for the statuses an operator can fix. */
function bucketError (op: string, key: string, err: unknown, signal: AbortSignal | undefined): BucketError {
  if (err instanceof BucketError) return err
  if (signal?.aborted === true) {
    return new BucketError(op, key, undefined, `no answer in time (${String((signal.reason as Error | undefined)?.message ?? 'aborted')})`)
  }
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode
    const hint = status === 403
      ? '; check the credentials (the standard AWS chain) and that the IAM policy allows s3:GetObject, s3:PutObject and s3:ListBucket on the prefix (see the README)'
      : status === 301 || err.name === 'PermanentRedirect'
      ? '; the bucket is in another region: set AWS_REGION'
      : ''
    return new BucketError(
      op,
      key,
      status,
      `${err.name}${err.message !== '' && err.message !== err.name ? `: ${err.message}` : ''} (HTTP ${status ?? '?'})${hint}`
    )
  }
  const e = err as NodeJS.ErrnoException
  return new BucketError(
    op,
    key,
    undefined,
    `${e.code !== undefined ? `${e.code} ` : ''}${e.message ?? String(err)}; check CACHE_S3_ENDPOINT and that the store is reachable`
  )
}
