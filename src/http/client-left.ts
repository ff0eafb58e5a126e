import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * An AbortSignal that aborts when the client hangs up before `res` was finished: passed to the
 * resolvers, it releases this response's share of a download or upstream request (the work goes
 * on for the other clients that share it).
 */
export function clientLeft (res: ServerResponse): AbortSignal {
  const left = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) left.abort(new Error('the client closed the connection'))
  })
  return left.signal
}

/** Whether the client hung up before its request's body was all read (an upload cut mid-way): not a failure of ours. */
export function leftMidRequest (req: IncomingMessage): boolean {
  return req.destroyed && !req.complete
}
