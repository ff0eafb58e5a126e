import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { HostPort } from '../config/options.js'
import { sendJson } from './respond.js'

/** A route group answers the request and returns true, or returns false to pass it on. */
export interface RouteGroup {
  handle: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
}

export function createHttpServer (routes: RouteGroup[], log: Logger): Server {
  const server = createServer((req, res) => {
    void (async () => {
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://sidecar')
      } catch {
        sendJson(res, 400, { error: 'malformed request URL' })
        return
      }
      for (const group of routes) {
        if (await group.handle(req, res, url)) return
      }
      sendJson(res, 404, { error: `no such endpoint ${url.pathname.slice(0, 200)}` })
    })().catch((err: Error) => {
      log.error({ err: err.message, url: req.url }, 'unhandled request error')
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' })
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 65_000
  return server
}

export async function listen (server: Server, addr: HostPort): Promise<HostPort> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(addr.port, addr.host, () => { server.off('error', reject); resolve() })
  })
  const bound = server.address()
  return typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : addr
}
