import assert from 'node:assert/strict'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { BlobCatalog } from '../../../src/store/catalog.js'
import type { BlobIndex } from '../../../src/store/reconcile.js'
import type { Digest } from '../../../src/oci/digest.js'

const a = `sha256:${'a'.repeat(64)}` as Digest
const b = `sha256:${'b'.repeat(64)}` as Digest

describe('BlobCatalog: the index, changed one digest at a time', () => {
  let t: TestStore
  let catalog: BlobCatalog
  let size: number
  let deleted: Digest[]

  beforeEach(async () => {
    t = await openTestStore()
    size = 0
    deleted = []
    const index: BlobIndex = t.store.db.sublevel('catalog-test', { valueEncoding: 'json' })
    catalog = new BlobCatalog({
      layout: t.store.layout,
      index,
      space: {
        adjust: bytes => {
          size += bytes
        }
      },
      onDelete: d => {
        deleted.push(d)
      }
    })
  })

  afterEach(async () => {
    await t.dispose()
  })

  it('runs the changes of one digest one after the other, in the order asked, and others alongside', async () => {
    const order: string[] = []
    const step = async (name: string, ms: number): Promise<void> => {
      order.push(`${name} start`)
      await new Promise(resolve => setTimeout(resolve, ms))
      order.push(`${name} end`)
    }
    await Promise.all([
      catalog.exclusive(a, async () => {
        await step('a1', 20)
      }),
      catalog.exclusive(a, async () => {
        await step('a2', 1)
      }),
      catalog.exclusive(b, async () => {
        await step('b', 5)
      })
    ])
    assert.deepEqual(order.filter(s => s.startsWith('a')), ['a1 start', 'a1 end', 'a2 start', 'a2 end'])
    assert.ok(order.indexOf('b start') < order.indexOf('a1 end'), 'another digest does not wait')
  })

  it('a change that fails does not hold up the next one', async () => {
    await assert.rejects(
      catalog.exclusive(a, async () => {
        throw new Error('boom')
      }),
      /boom/
    )
    assert.equal(await catalog.exclusive(a, async () => 'next'), 'next')
  })

  it('delete drops the record once, counts its size out and reports it', async () => {
    await catalog.put(a, { size: 100, createdAt: 0, accessedAt: 0, mtimeMs: 0 })
    assert.deepEqual(await Promise.all([catalog.delete(a), catalog.delete(a)]), [true, false])
    assert.equal(await catalog.get(a), undefined)
    assert.equal(size, -100)
    assert.deepEqual(deleted, [a])
  })
})
