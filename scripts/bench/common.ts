/** Helpers shared by the bench sections (main.ts, p2p.ts). */
import { createHash, randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { requestJson, type FetchResult } from './http-client.js'
import type { Cleanup } from './cleanup.js'
import { MB, MiB, type Row } from './report.js'

/** What every section gets from main.ts. */
export interface SectionCtx {
  work: string
  /** The run's teardown; each section also tears its own processes down when it ends. */
  cleanup: Cleanup
  rows: Row[]
  samples: Record<string, unknown>
  log: (msg: string) => void
}

export interface BlobFile {
  path: string
  size: number
  digest: string
}

/** Writes `size` random bytes to a file, hashing as it goes. */
export async function randomBlobFile (dir: string, name: string, size: number): Promise<BlobFile> {
  const path = join(dir, name)
  const hash = createHash('sha256')
  const file = await open(path, 'wx')
  try {
    const chunk = 4 * MiB
    for (let written = 0; written < size;) {
      const buf = randomBytes(Math.min(chunk, size - written))
      hash.update(buf)
      await file.write(buf, 0, buf.byteLength, written)
      written += buf.byteLength
    }
  } finally {
    await file.close()
  }
  return { path, size, digest: `sha256:${hash.digest('hex')}` }
}

export interface GcCounts {
  major: number
  all: number
  seconds: number
}

/** A sidecar's own GC counters (prom-client default metrics on /metrics); zeros if unreadable. */
export async function sidecarGc (sidecarUrl: string): Promise<GcCounts> {
  const out: GcCounts = { major: 0, all: 0, seconds: 0 }
  let text: unknown
  try {
    text = await requestJson('GET', `${sidecarUrl}/metrics`)
  } catch {
    return out
  }
  if (typeof text !== 'string') return out
  for (const m of text.matchAll(/^\w*nodejs_gc_duration_seconds_(count|sum)\{kind="(\w+)"[^}]*\} ([\d.e+-]+)$/gm)) {
    const v = Number(m[3])
    if (m[1] === 'sum') out.seconds += v
    else {
      out.all += v
      if (m[2] === 'major') out.major += v
    }
  }
  return out
}

export function gcDelta (a: GcCounts, b: GcCounts): GcCounts {
  return { major: b.major - a.major, all: b.all - a.all, seconds: b.seconds - a.seconds }
}

export function mbps (r: FetchResult): number {
  return r.bytes / MB / (r.ms / 1000)
}

export function spread (xs: number[], digits: number): string {
  if (xs.length === 0) return '-'
  return `${Math.min(...xs).toFixed(digits)}..${Math.max(...xs).toFixed(digits)}`
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
