import { randomBytes } from 'node:crypto'
import { mkdir, open, rm, statfs } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { formatBytes } from '../config/units.js'
import { fail, ok, warn, type Finding } from './finding.js'

/** CACHE_DIR can be created and written (a file written, synced and removed), and its disk can hold CACHE_MAX_SIZE. */
export async function checkStorage (dir: string, maxSize: number, storedBytes: number | undefined): Promise<Finding[]> {
  const abs = resolve(dir)
  const probe = join(abs, `.diagnose-${randomBytes(4).toString('hex')}`)
  try {
    await mkdir(abs, { recursive: true })
    const file = await open(probe, 'wx', 0o600)
    try {
      await file.write(Buffer.from('p2p-cache diagnose\n'))
      await file.sync()
    } finally {
      await file.close()
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    return [
      fail(
        'storage.dir',
        `data dir ${abs} is not writable (${code})`,
        `give the sidecar's user write access (\`chown -R <uid> ${abs}\`; in a container mount a volume there: \`-v p2p-cache:${abs}\`), or set CACHE_DIR to a writable path`,
        { dir: abs, error: code }
      )
    ]
  } finally {
    // Under a path that is not a directory, even this fails (ENOTDIR): the finding above says why.
    await rm(probe, { force: true }).catch(() => {})
  }
  const out: Finding[] = [ok('storage.dir', `data dir ${abs} is writable`, { dir: abs })]
  const fs = await statfs(abs)
  const free = fs.bavail * fs.bsize
  // The store may still grow by what it doesn't hold yet.
  const needed = Math.max(0, maxSize - (storedBytes ?? 0))
  const facts = { freeBytes: free, maxSize, storedBytes: storedBytes ?? null }
  if (free < needed) {
    const suggestion = Math.max(1e9, Math.floor((free + (storedBytes ?? 0)) * 0.8 / 1e9) * 1e9)
    out.push(
      warn(
        'storage.space',
        `${formatBytes(free)} free on the disk of ${abs}, but the store may grow ${formatBytes(needed)} more (CACHE_MAX_SIZE ${
          formatBytes(maxSize)
        }): the disk fills before eviction starts`,
        `lower CACHE_MAX_SIZE to what the disk can hold, e.g. CACHE_MAX_SIZE=${suggestion / 1e9}GB, or give CACHE_DIR a larger volume`,
        facts
      )
    )
  } else {
    out.push(ok('storage.space', `${formatBytes(free)} free, room for CACHE_MAX_SIZE ${formatBytes(maxSize)}`, facts))
  }
  return out
}
