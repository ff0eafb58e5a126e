import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { pinoHttp } from 'pino-http'

/** Attaches the access log to one request/response; it writes its line when the response ends. */
export type AccessLog = (req: IncomingMessage, res: ServerResponse) => void

/**
 * One line per request at info (pino-http): method, path, status, bytes (Content-Length when
 * known), duration in ms, `X-Cache` and `X-Cache-Source`. Never headers or bodies: a client's
 * Authorization must not reach the log. Undefined when info is off (CACHE_LOG_LEVEL=warn...):
 * nothing is attached then, so the hot path costs nothing.
 */
export function accessLog (log: Logger): AccessLog | undefined {
  if (!log.isLevelEnabled('info')) return undefined
  const middleware = pinoHttp({
    logger: log.child({ component: 'http' }),
    quietReqLogger: true,
    wrapSerializers: false,
    serializers: {
      req: (req: IncomingMessage) => ({ method: req.method, url: req.url }),
      res: (res: ServerResponse) => ({ status: res.statusCode })
    },
    customAttributeKeys: { responseTime: 'ms' },
    customSuccessMessage: () => 'request',
    customErrorMessage: () => 'request failed',
    customProps: (_req, res) => {
      const header = (name: string): unknown => res.getHeader(name) ?? written.get(res)?.[name]
      const length = header('content-length')
      const cache = header('x-cache')
      const source = header('x-cache-source')
      return {
        ...(length !== undefined ? { bytes: Number(length) } : {}),
        ...(cache !== undefined ? { cache: String(cache) } : {}),
        ...(source !== undefined ? { source: String(source) } : {})
      }
    }
  })
  // Headers given to writeHead() are not readable with getHeader(): they are kept as passed.
  const written = new WeakMap<ServerResponse, OutgoingHttpHeaders>()
  return (req, res) => {
    const writeHead = res.writeHead
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      const headers = args.find((a): a is OutgoingHttpHeaders => typeof a === 'object' && a !== null && !Array.isArray(a))
      if (headers !== undefined) written.set(res, headers)
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args)
    } as typeof res.writeHead
    middleware(req, res)
  }
}
