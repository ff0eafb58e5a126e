import { timingSafeEqual, createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isLoopback } from '../http/loopback.js'

/**
 * Admin calls (clearing, gc, pins) are allowed from loopback, or with the configured
 * CACHE_ADMIN_TOKEN as a Bearer token from anywhere.
 */
export function isAdminRequest (req: IncomingMessage, adminToken: string): boolean {
  if (isLoopback(req.socket.remoteAddress)) return true
  if (adminToken === '') return false
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')
  if (m === null) return false
  const given = createHash('sha256').update(m[1] ?? '').digest()
  const wanted = createHash('sha256').update(adminToken).digest()
  return timingSafeEqual(given, wanted)
}
