import { Readable } from 'node:stream'
import type { AbortOptions } from '@libp2p/interface'
import { BucketError, type Bucket, type BucketHead, type BucketObject, type PutOptions } from '../../../src/bucket/bucket.js'

interface StoredObject {
  body: Buffer
  contentType: string | undefined
  metadata: Record<string, string>
  lastModified: Date
}

/**
 * An in-memory bucket with the faults that hurt the sidecar: `down` (every request fails at
 * once, as a refused connection), `hang` (requests never answer until their signal aborts),
 * `stallAfter` (a body stops after that many bytes and never ends).
 */
export class FakeBucket implements Pick<Bucket, 'name' | 'get' | 'head' | 'put' | 'list'> {
  readonly name = 's3://fake/cache/'
  readonly objects = new Map<string, StoredObject>()
  /** Every request, as `<op> <key>`. */
  readonly requests: string[] = []
  down = false
  hang = false
  stallAfter: number | undefined

  /** Plants an object as another writer (or bit rot) left it. */
  set (key: string, body: Buffer | string, contentType?: string, metadata: Record<string, string> = {}): void {
    this.objects.set(key, { body: Buffer.from(body), contentType, metadata, lastModified: new Date() })
  }

  puts (key: string): number {
    return this.requests.filter(r => r === `PUT ${key}`).length
  }

  async get (key: string, options: AbortOptions = {}): Promise<BucketObject | undefined> {
    await this.answer('GET', key, options)
    const o = this.objects.get(key)
    if (o === undefined) return undefined
    const stall = this.stallAfter
    const body = stall === undefined
      ? Readable.from([o.body])
      : new Readable({
        read () {
          if (!this.readableEnded && stall > 0) this.push(o.body.subarray(0, stall))
        }
      })
    return { size: o.body.byteLength, contentType: o.contentType, metadata: { ...o.metadata }, body }
  }

  async head (key: string, options: AbortOptions = {}): Promise<BucketHead | undefined> {
    await this.answer('HEAD', key, options)
    const o = this.objects.get(key)
    return o === undefined ? undefined : { size: o.body.byteLength, lastModified: o.lastModified, metadata: { ...o.metadata } }
  }

  async put (key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<void> {
    await this.answer('PUT', key, options)
    const chunks: Buffer[] = []
    if (Buffer.isBuffer(body)) chunks.push(body)
    else for await (const chunk of body) chunks.push(chunk as Buffer)
    this.objects.set(key, {
      body: Buffer.concat(chunks),
      contentType: options.contentType,
      metadata: options.metadata ?? {},
      lastModified: new Date()
    })
  }

  async list (prefix: string, limit: number, options: AbortOptions = {}): Promise<string[]> {
    await this.answer('LIST', prefix, options)
    return [...this.objects.keys()].filter(k => k.startsWith(prefix)).sort().slice(0, limit)
  }

  private async answer (op: string, key: string, options: AbortOptions): Promise<void> {
    this.requests.push(`${op} ${key}`)
    if (this.down) throw new BucketError(op, key, undefined, 'ECONNREFUSED')
    if (this.hang) {
      await new Promise<void>((_resolve, reject) => {
        const fail = (): void => {
          reject(new BucketError(op, key, undefined, 'no answer in time'))
        }
        if (options.signal?.aborted === true) fail()
        options.signal?.addEventListener('abort', fail, { once: true })
      })
    }
  }
}
