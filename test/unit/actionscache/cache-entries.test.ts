import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { SwarmRecords, type RecordTable } from '../../../src/records/swarm-records.js'
import {
  cacheEntryKind,
  entryGroup,
  entryName,
  matchEntry,
  type CacheEntry,
  type EntryPlace
} from '../../../src/actionscache/cache-entries.js'
import { sha256Digest } from '../../../src/oci/digest.js'
import { silentLog } from '../fakes/log.js'

describe("Actions cache entries: GitHub's restore order over swarm records", () => {
  let dir: string
  let db: Level<string, unknown>
  let table: RecordTable<CacheEntry>
  const main: EntryPlace = { repository: '1', scope: 'refs/heads/main', version: 'v' }
  const feature: EntryPlace = { ...main, scope: 'refs/heads/feature' }
  const entry = (key: string, createdAt: number): CacheEntry => ({
    key,
    digest: sha256Digest(Buffer.from(key)),
    size: 1,
    createdAt,
    writer: 'w'
  })
  const save = async (place: EntryPlace, key: string, createdAt: number): Promise<void> => {
    await table.put(entryName(place, key) as string, entry(key, createdAt))
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cache-entries-unit-'))
    db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
    await db.open()
    table = new SwarmRecords({ db, log: silentLog() }).define(cacheEntryKind(true))
  })

  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it("the exact key first, then the key and each restore key as a prefix, newest first, scope by scope in the token's order", async () => {
    await save(main, 'npm-linux-aaa', 1)
    await save(main, 'npm-linux-bbb', 3)
    await save(main, 'npm-other', 9)
    await save(feature, 'npm-linux-ccc', 2)
    assert.equal((await matchEntry(table, [main], 'npm-linux-aaa', []))?.entry.key, 'npm-linux-aaa', 'exact beats newer')
    assert.deepEqual(await matchEntry(table, [main], 'npm-linux-zzz', ['npm-linux-']).then(m => [m?.entry.key, m?.exact]), [
      'npm-linux-bbb',
      false
    ])
    assert.equal(
      (await matchEntry(table, [main], 'npm-linux-zzz', ['nothing-', 'npm-']))?.entry.key,
      'npm-other',
      'restore keys in order; the newest of a prefix'
    )
    assert.equal(
      (await matchEntry(table, [feature, main], 'npm-linux-zzz', ['npm-linux-']))?.scope,
      'refs/heads/feature',
      "the job's own scope first"
    )
    assert.equal(await matchEntry(table, [main], 'yarn-', ['yarn-']), undefined)
    assert.equal(await matchEntry(table, [{ ...main, repository: '2' }], 'npm-linux-aaa', ['npm-']), undefined, 'another repository')
    assert.equal(await matchEntry(table, [{ ...main, version: 'w' }], 'npm-linux-aaa', ['npm-']), undefined, 'another version')
  })

  it('names: keys with spaces and percent signs stay prefixes of their own prefixes; a group has no colon; too long a name is not made', () => {
    const name = entryName(main, 'a b%c:d') as string
    assert.ok(name.startsWith(`${entryGroup(main)}:`) && !/\s/.test(name))
    assert.ok(name.startsWith(entryName(main, 'a b%') as string))
    assert.ok(!entryGroup(main).includes(':'))
    assert.equal(entryName(main, '%'.repeat(300)), undefined)
  })
})
