/**
 * The Content-Length field (RFC 9110 §8.6): a run of digits, as a safe integer; undefined when
 * absent, repeated with different values, or malformed (then the length is not known).
 */
export function contentLength (value: string | string[] | number | undefined): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  const text = Array.isArray(value) ? (new Set(value).size === 1 ? value[0] : undefined) : value
  if (text === undefined || !/^\d{1,16}$/.test(text.trim())) return undefined
  const n = Number(text.trim())
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * The media type of a Content-Type field (RFC 9110 §8.3.1): `type/subtype`, lower-cased, without
 * its parameters; '' when absent.
 */
export function mediaTypeOf (value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value[0] : value
  return (text ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}
