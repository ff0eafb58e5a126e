import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { request, type IncomingHttpHeaders } from 'node:http'
import { performance } from 'node:perf_hooks'

export interface FetchOptions {
  /** sha256 the body as it arrives (the client side of a digest-verifying pull). */
  hash: boolean
  /** When set with `hash`, a different digest is an error. */
  expectDigest?: string
  timeoutMs: number
}

export interface FetchResult {
  status: number
  headers: IncomingHttpHeaders
  bytes: number
  /** Request sent → last byte, milliseconds. */
  ms: number
  /** Request sent → response headers, milliseconds. */
  ttfbMs: number
  /** Request sent → first body byte, milliseconds (= ms for an empty body). */
  firstByteMs: number
  /** Between the next-to-last byte and the last one: a sidecar holds the last byte of a miss
   *  back until the blob is verified and committed. */
  lastByteWaitMs: number
  digest: string | undefined
}

/**
 * One GET on a fresh connection (no keep-alive agent), body drained and optionally hashed.
 * Rejects on a non-200 status, a short body, a digest mismatch or the timeout.
 */
export function fetchBlob (url: string, opts: FetchOptions): Promise<FetchResult> {
  return new Promise((resolve, reject) => {
    const hash = opts.hash ? createHash('sha256') : undefined
    let bytes = 0
    let ttfbMs = 0
    let firstByteMs = 0
    let almostMs = 0
    let settled = false
    const t0 = performance.now()
    const fail = (err: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      reject(err)
    }
    const req = request(url, { method: 'GET', agent: false }, res => {
      ttfbMs = performance.now() - t0
      const status = res.statusCode ?? 0
      if (status !== 200) {
        res.resume()
        fail(new Error(`GET ${url}: status ${status}`))
        return
      }
      const length = res.headers['content-length']
      const nextToLast = length === undefined ? Infinity : Number(length) - 1
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0 && chunk.byteLength > 0) firstByteMs = performance.now() - t0
        bytes += chunk.byteLength
        hash?.update(chunk)
        if (almostMs === 0 && bytes >= nextToLast) almostMs = performance.now() - t0
      })
      res.once('end', () => {
        if (settled) return
        const ms = performance.now() - t0
        if (length !== undefined && Number(length) !== bytes) {
          fail(new Error(`GET ${url}: ${bytes} of ${length} bytes`))
          return
        }
        const digest = hash === undefined ? undefined : `sha256:${hash.digest('hex')}`
        if (digest !== undefined && opts.expectDigest !== undefined && digest !== opts.expectDigest) {
          fail(new Error(`GET ${url}: body hashes to ${digest}, expected ${opts.expectDigest}`))
          return
        }
        settled = true
        clearTimeout(timer)
        resolve({
          status,
          headers: res.headers,
          bytes,
          ms,
          ttfbMs,
          firstByteMs: bytes === 0 ? ms : firstByteMs,
          lastByteWaitMs: almostMs === 0 ? 0 : ms - almostMs,
          digest
        })
      })
      res.once('error', fail)
      res.once('close', () => {
        if (!res.complete) fail(new Error(`GET ${url}: connection closed after ${bytes} bytes`))
      })
    })
    const timer = setTimeout(() => fail(new Error(`GET ${url}: not done within ${opts.timeoutMs} ms`)), opts.timeoutMs)
    req.once('error', fail)
    req.end()
  })
}

/** A small request whose JSON (or empty) answer is returned; throws on a non-2xx status. */
export function requestJson (method: string, url: string, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, timeout: timeoutMs }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.once('error', reject)
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        const status = res.statusCode ?? 0
        if (status < 200 || status >= 300) {
          reject(new Error(`${method} ${url}: status ${status} ${text.slice(0, 300)}`))
          return
        }
        try {
          resolve(text === '' ? undefined : JSON.parse(text) as unknown)
        } catch {
          resolve(text)
        }
      })
    })
    req.once('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)))
    req.once('error', reject)
    req.end()
  })
}

/**
 * Uploads a file as a blob to a distribution registry (POST, then one monolithic PUT). The
 * blob is linked into `repo`, so GET /v2/<repo>/blobs/<digest> serves it; no manifest needed.
 */
export async function uploadBlob (
  registryUrl: string,
  repo: string,
  file: string,
  size: number,
  digest: string,
  timeoutMs = 120_000
): Promise<void> {
  const location = await new Promise<string>((resolve, reject) => {
    const req = request(`${registryUrl}/v2/${repo}/blobs/uploads/`, {
      method: 'POST',
      agent: false,
      timeout: timeoutMs,
      headers: { 'content-length': 0 }
    }, res => {
      res.resume()
      const loc = res.headers.location
      if (res.statusCode !== 202 || loc === undefined) {
        reject(new Error(`upload start: status ${res.statusCode ?? 0}`))
        return
      }
      resolve(new URL(loc, registryUrl).toString())
    })
    req.once('timeout', () => req.destroy(new Error('upload start: timeout')))
    req.once('error', reject)
    req.end()
  })
  const put = new URL(location)
  put.searchParams.set('digest', digest)
  await new Promise<void>((resolve, reject) => {
    const req = request(put, {
      method: 'PUT',
      agent: false,
      timeout: timeoutMs,
      headers: { 'content-type': 'application/octet-stream', 'content-length': size }
    }, res => {
      res.resume()
      if (res.statusCode !== 201) {
        reject(new Error(`upload of ${digest}: status ${res.statusCode ?? 0}`))
        return
      }
      res.once('end', resolve)
    })
    req.once('timeout', () => req.destroy(new Error(`upload of ${digest}: timeout`)))
    req.once('error', reject)
    createReadStream(file).once('error', reject).pipe(req)
  })
}
