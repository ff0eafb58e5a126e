import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'

/**
 * The asking side of this node's one-frame protocols (claim, hold, dial-back): writes `frame`
 * length-prefixed on `stream`, reads one frame back (at most `maxAnswerBytes`) and decodes it
 * with `decode`, then closes the stream. Any failure aborts the stream and is thrown (the
 * decoder's FrameError, a reset, `signal`'s reason).
 */
export async function exchangeFrame<T> (
  stream: Stream,
  frame: Uint8Array,
  decode: (bytes: Uint8Array) => T,
  opts: { signal: AbortSignal, maxAnswerBytes: number }
): Promise<T> {
  const { signal } = opts
  try {
    const lp = lpStream(stream, { maxDataLength: opts.maxAnswerBytes })
    await lp.write(frame, { signal })
    const answer = decode((await lp.read({ signal })).subarray())
    await stream.close({ signal }).catch(() => {})
    return answer
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}
