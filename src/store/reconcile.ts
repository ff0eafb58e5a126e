import { createReadStream } from 'node:fs'
import { readdir, rm, stat, mkdir } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'
import { isDigest, type Digest } from '../oci/digest.js'
import type { StoreLayout } from './layout.js'
import type { BlobRecord } from './record.js'

export type BlobIndex = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, BlobRecord>

export interface ReconcileReport {
  tmpRemoved: number
  indexedOrphans: number
  removedFiles: number
  removedRecords: number
}

export async function hashFile (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  return `sha256:${hash.digest('hex')}`
}

/**
 * The index can't open on a full filesystem (LevelDB writes a new manifest and log at open):
 * removes what start-up would remove anyway (tmp/), then the least recently modified blob files
 * until `bytes` are freed. Their records are dropped by `reconcile`. Returns the digests of
 * the blobs removed, and the bytes freed.
 */
export async function freeForOpen (layout: StoreLayout, bytes: number): Promise<{ removed: Digest[], freed: number }> {
  let freed = 0
  for (const name of await readdir(layout.tmp).catch(() => [])) {
    const path = join(layout.tmp, name)
    freed += (await stat(path).catch(() => undefined))?.size ?? 0
    await rm(path, { recursive: true, force: true })
  }
  const files: Array<{ digest: Digest, path: string, size: number, mtimeMs: number }> = []
  for (const prefix of await readdir(layout.blobs).catch(() => [])) {
    for (const name of await readdir(join(layout.blobs, prefix)).catch(() => [])) {
      const digest = `sha256:${name}`
      const path = join(layout.blobs, prefix, name)
      const info = await stat(path).catch(() => undefined)
      if (isDigest(digest) && info?.isFile() === true) files.push({ digest, path, size: info.size, mtimeMs: info.mtimeMs })
    }
  }
  const removed: Digest[] = []
  for (const file of files.sort((a, b) => a.mtimeMs - b.mtimeMs)) {
    if (freed >= bytes) break
    await rm(file.path, { force: true })
    removed.push(file.digest)
    freed += file.size
  }
  return { removed, freed }
}

/**
 * Makes index and files agree after any stop, including SIGKILL mid-write:
 * tmp/ is emptied; records whose file is gone or has the wrong size are dropped;
 * files without a record (killed between rename and index) are re-hashed and indexed
 * when they verify, deleted otherwise.
 */
export async function reconcile (layout: StoreLayout, index: BlobIndex, now: number): Promise<ReconcileReport> {
  const report: ReconcileReport = { tmpRemoved: 0, indexedOrphans: 0, removedFiles: 0, removedRecords: 0 }

  const leftovers = await readdir(layout.tmp).catch(() => [])
  await rm(layout.tmp, { recursive: true, force: true })
  await mkdir(layout.tmp, { recursive: true })
  report.tmpRemoved = leftovers.length

  const files = new Map<Digest, { path: string, size: number, mtimeMs: number }>()
  for (const prefix of await readdir(layout.blobs).catch(() => [])) {
    const dir = join(layout.blobs, prefix)
    for (const name of await readdir(dir).catch(() => [])) {
      const path = join(dir, name)
      const digest = `sha256:${name}`
      const info = await stat(path).catch(() => undefined)
      if (info === undefined) continue
      if (!isDigest(digest) || name.slice(0, 2) !== prefix || !info.isFile()) {
        await rm(path, { recursive: true, force: true })
        report.removedFiles++
        continue
      }
      files.set(digest, { path, size: info.size, mtimeMs: info.mtimeMs })
    }
  }

  const drop: string[] = []
  for await (const [key, record] of index.iterator()) {
    const file = isDigest(key) ? files.get(key) : undefined
    if (file === undefined || file.size !== record.size) {
      drop.push(key)
      if (file !== undefined) {
        await rm(file.path, { force: true })
        report.removedFiles++
      }
    }
    if (isDigest(key)) files.delete(key)
  }
  if (drop.length > 0) await index.batch(drop.map(key => ({ type: 'del' as const, key })))
  report.removedRecords = drop.length

  for (const [digest, file] of files) {
    if (await hashFile(file.path) === digest) {
      await index.put(digest, { size: file.size, createdAt: now, accessedAt: now, mtimeMs: file.mtimeMs })
      report.indexedOrphans++
    } else {
      await rm(file.path, { force: true })
      report.removedFiles++
    }
  }
  return report
}
