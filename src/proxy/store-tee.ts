import { Transform } from 'node:stream'
import type { BlobWriter } from '../store/writer.js'

/** A pass-through that also writes every chunk to a store writer. */
export interface StoreTee {
  stream: Transform
  /** False once a write failed: the copy is incomplete (abort the writer), the bytes went on. */
  readonly copied: boolean
}

/**
 * Passes bytes on to the client while writing them to `writer`. A write that fails (a full
 * disk) costs the copy, not the client's download: `failed` is called once and the bytes go on.
 */
export function storeTee (writer: BlobWriter, failed: (err: Error) => void): StoreTee {
  let copied = true
  const stream = new Transform({
    transform (chunk: Buffer, _enc, done) {
      if (!copied) {
        done(null, chunk)
        return
      }
      writer.write(chunk).then(() => {
        done(null, chunk)
      }, (err: unknown) => {
        copied = false
        failed(err as Error)
        done(null, chunk)
      })
    }
  })
  return {
    stream,
    get copied () {
      return copied
    }
  }
}
