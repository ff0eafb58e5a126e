import type { Readable } from 'node:stream'

/**
 * Reads a response body as batches of the chunks that arrived while the consumer was busy (one
 * vectored file write each), without joining them: `for await` over a Readable joins everything
 * buffered into a new Buffer on every read, a copy of the whole body and garbage that triggers
 * major GCs. Above `highWater` buffered bytes the body is paused (the socket's TCP window then
 * holds the sender). Throws the body's error; a body that closes before its end is an error too.
 */
export async function * bodyBatches (body: Readable, highWater: number): AsyncGenerator<Buffer[]> {
  let queue: Buffer[] = []
  let queued = 0
  let ended = false
  let error: Error | undefined
  let wake: (() => void) | undefined
  const notify = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const onData = (chunk: Buffer): void => {
    queue.push(chunk)
    queued += chunk.byteLength
    if (queued >= highWater) body.pause()
    notify()
  }
  const onEnd = (): void => { ended = true; notify() }
  const onError = (err: Error): void => { error ??= err; notify() }
  const onClose = (): void => {
    if (!ended) error ??= new Error('the response body closed before its end')
    notify()
  }
  body.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
  try {
    for (;;) {
      if (queued > 0) {
        const batch = queue
        queue = []
        queued = 0
        body.resume()
        yield batch
        continue
      }
      if (error !== undefined) throw error
      if (ended) return
      await new Promise<void>(resolve => { wake = resolve })
    }
  } finally {
    body.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
  }
}
