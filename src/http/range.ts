import parseRange from 'range-parser'

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial', start: number, end: number }
  | { kind: 'unsatisfiable' }

/**
 * One byte range of a blob of `size` bytes. Multi-range requests get the whole blob (allowed
 * by RFC 9110), as registries do; an unknown size also means the whole blob. With `ifRange`
 * (RFC 9110 13.1.5), the Range applies only if it is exactly `etag` (strong comparison; we send
 * no Last-Modified, so a date never matches): otherwise the whole blob.
 */
export function selectRange (header: string | undefined, size: number | undefined, ifRange?: string, etag?: string): RangeResult {
  if (header === undefined || size === undefined) return { kind: 'full' }
  if (ifRange !== undefined && ifRange.trim() !== etag) return { kind: 'full' }
  const ranges = parseRange(size, header, { combine: true })
  if (ranges === -1) return { kind: 'unsatisfiable' }
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return { kind: 'full' }
  const r = ranges[0]
  if (r === undefined) return { kind: 'full' }
  return { kind: 'partial', start: r.start, end: r.end + 1 }
}
