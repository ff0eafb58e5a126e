import type { Readable } from 'node:stream'

/*
 * Reading a body someone else sends (an upstream, a client, a peer's HTTP port) never holds more
 * than the caller's bound: past it, the rest is dropped.
 */

/** Drops a response body we don't need. undici emits 'error' on destroy, so listen first. */
export function discard (body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}

/** The whole body, or undefined (and the rest discarded) once it passes `limit` bytes. */
export async function readBounded (body: Readable, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).byteLength
    if (size > limit) {
      discard(body)
      return undefined
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** The body as UTF-8, cut at `limit` bytes (the rest discarded): an error answer's text. */
export async function readLimited (body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const chunk of body) {
    const buf = chunk as Buffer
    if (n + buf.byteLength > limit) {
      discard(body)
      break
    }
    chunks.push(buf)
    n += buf.byteLength
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** The body parsed as JSON when it is at most `limit` bytes long and valid; else undefined (the rest dropped). */
export async function readJsonBounded (body: Readable, limit: number): Promise<unknown> {
  const bytes = await readBounded(body, limit)
  if (bytes === undefined) return undefined
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown
  } catch {
    return undefined
  }
}
