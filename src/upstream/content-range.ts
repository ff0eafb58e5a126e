/** `Content-Range: bytes <start>-<end>/<total>` of a 206; undefined when absent or malformed. */
export function parseContentRange (value: string | undefined): { start: number, end: number, total: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value?.trim() ?? '')
  if (m === null) return undefined
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])]
  return start <= end && end < total ? { start, end, total } : undefined
}
