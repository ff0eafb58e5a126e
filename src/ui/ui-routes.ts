import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { sendJson } from '../http/respond.js'
import { MAX_LIVE_PAGES, STATUS_PUSH_MS } from './constants.js'
import type { Status } from './status.js'

export interface UiRoutesInit {
  status: Pick<Status, 'view'>
  log: Logger
}

/** The page: one self-contained file (no CDN, fonts or scripts from elsewhere: air-gapped runners). */
const PAGE = new URL('./status.html', import.meta.url)

/**
 * The status page (issue 29): `GET /ui`, the page; `GET /api/status`, its data (StatusView);
 * `GET /api/status/events`, the same as server-sent events every STATUS_PUSH_MS while the page is
 * open (WHATWG HTML §9.2). Read-only: no token needed, nothing changes.
 */
export class UiRoutes {
  private page: Promise<Buffer> | undefined
  private readonly live = new Set<ServerResponse>()
  /** One timer and one view per tick for all the pages following (not one each). */
  private timer: NodeJS.Timeout | undefined
  private pushing = false

  constructor (private readonly init: UiRoutesInit) {}

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname
    if (path !== '/ui' && path !== '/ui/' && path !== '/api/status' && path !== '/api/status/events') return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: `${req.method ?? ''} ${path}: the status page is read-only (GET)` }, { allow: 'GET, HEAD' })
      return true
    }
    if (path === '/ui' || path === '/ui/') await this.sendPage(req, res)
    else if (path === '/api/status') sendJson(res, 200, await this.init.status.view(), { 'cache-control': 'no-store' })
    else await this.events(req, res)
    return true
  }

  private async sendPage (req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.page ??= readFile(PAGE)
    const body = await this.page
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': body.byteLength,
      // Everything the page needs is in it: it may load nothing from elsewhere.
      'content-security-policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      'cache-control': 'no-cache'
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  /** Server-sent events: a status now, then every STATUS_PUSH_MS until the page leaves. */
  private async events (req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.live.size >= MAX_LIVE_PAGES) {
      sendJson(
        res,
        503,
        { error: `${MAX_LIVE_PAGES} pages follow the status already: close one, or poll GET /api/status` },
        { 'retry-after': '10' }
      )
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    if (req.method === 'HEAD') {
      res.end()
      return
    }
    const closed = new Promise<void>(resolve => {
      res.once('close', resolve)
    })
    this.live.add(res)
    // To every page: one that joins while a status is being built gets that one when it is sent.
    await this.push()
    this.timer ??= setInterval(() => {
      void this.push()
    }, STATUS_PUSH_MS)
    await closed
    this.live.delete(res)
    if (this.live.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  /** Builds the status once and sends it to every live page (one still being built is not doubled). */
  private async push (): Promise<void> {
    if (this.pushing) return
    this.pushing = true
    try {
      const event = `event: status\ndata: ${JSON.stringify(await this.init.status.view())}\n\n`
      for (const res of this.live) if (!res.writableEnded) res.write(event)
    } catch (err) {
      this.init.log.warn({ err: (err as Error).message }, 'status page: could not build the status')
    } finally {
      this.pushing = false
    }
  }

  /** Ends the pages following the status (at shutdown: the listeners then close at once). */
  close (): void {
    for (const res of this.live) res.end()
  }
}
