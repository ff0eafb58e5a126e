import assert from 'node:assert/strict'
import { join } from 'node:path'
import { blobPath, storeLayout } from '../../../src/store/layout.js'
import type { Digest } from '../../../src/oci/digest.js'

describe('store layout under CACHE_DIR (docs/design.md §3.5)', () => {
  it('keeps blobs, temporary files and the index in separate folders of CACHE_DIR', () => {
    const layout = storeLayout('/cache')
    assert.deepEqual(layout, {
      root: '/cache',
      blobs: join('/cache', 'blobs', 'sha256'),
      tmp: join('/cache', 'tmp'),
      index: join('/cache', 'index')
    })
  })

  it('files a blob under the first two hex characters of its digest, named by the whole hex', () => {
    const layout = storeLayout('/cache')
    const hex = `ab${'0'.repeat(62)}`
    assert.equal(blobPath(layout, `sha256:${hex}` as Digest), join('/cache', 'blobs', 'sha256', 'ab', hex))
  })
})
