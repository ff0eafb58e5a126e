import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkStorage } from '../../../src/diagnose/storage.js'

describe('diagnose storage: CACHE_DIR is writable and its disk can hold CACHE_MAX_SIZE', () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-unit-diagnose-'))
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('a writable dir with room is ok, created when missing, and the probe file is removed', async () => {
    const target = join(dir, 'new', 'cache')
    const findings = await checkStorage(target, 1000, 0)
    assert.deepEqual(findings.map(f => [f.check, f.verdict]), [['storage.dir', 'ok'], ['storage.space', 'ok']])
    assert.deepEqual(await readdir(target), [])
  })

  it('a dir that cannot be created fails with the error and how to fix it (chown, a volume, or CACHE_DIR)', async () => {
    const file = join(dir, 'a-file')
    await writeFile(file, 'x')
    const [f, ...rest] = await checkStorage(join(file, 'cache'), 1000, 0)
    assert.equal(rest.length, 0)
    assert.equal(f?.verdict, 'fail')
    assert.match(f?.summary ?? '', /is not writable \((ENOTDIR|EEXIST)\)/)
    assert.match(f?.fix ?? '', /chown -R <uid>.*-v p2p-cache:.*or set CACHE_DIR to a writable path/)
  })

  it('a CACHE_MAX_SIZE larger than the free space warns, suggesting a size that fits', async () => {
    const findings = await checkStorage(dir, 1e18, 0)
    const space = findings.find(f => f.check === 'storage.space')
    assert.equal(space?.verdict, 'warn')
    assert.match(space?.summary ?? '', /the disk fills before eviction starts/)
    const suggested = /CACHE_MAX_SIZE=(\d+)GB/.exec(space?.fix ?? '')
    assert.ok(suggested !== null, space?.fix)
    const free = (space?.facts as { freeBytes: number } | undefined)?.freeBytes ?? NaN
    assert.ok(Number(suggested[1]) * 1e9 <= Math.max(1e9, free), 'the suggestion fits on the disk (at least 1 GB)')
  })

  it('what the store already holds counts as room', async () => {
    const findings = await checkStorage(dir, 1e18, 1e18)
    assert.equal(findings.find(f => f.check === 'storage.space')?.verdict, 'ok')
  })
})
