/**
 * `X-Cache-Date` of a response: when the copy a HIT serves was stored on this node (ms since
 * the epoch), as an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7), as caching proxies send it next to
 * `X-Cache` for people judging how old a copy is. Nothing for other answers (MISS, PEER...):
 * their bytes are not a stored copy of this node's.
 */
export function cacheDateHeader (cache: string, storedAt: number | undefined): { 'x-cache-date'?: string } {
  return cache === 'HIT' && storedAt !== undefined && Number.isFinite(storedAt) ? { 'x-cache-date': new Date(storedAt).toUTCString() } : {}
}
