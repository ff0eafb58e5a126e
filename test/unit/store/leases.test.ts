import assert from 'node:assert/strict'
import { Leases } from '../../../src/store/leases.js'
import type { Digest } from '../../../src/oci/digest.js'

const a = `sha256:${'a'.repeat(64)}` as Digest
const b = `sha256:${'b'.repeat(64)}` as Digest

describe('Leases: which blobs are being read or written', () => {
  it('a blob is held while any of its readers still holds it', () => {
    const leases = new Leases()
    const first = leases.acquire(a)
    const second = leases.acquire(a)
    first()
    assert.equal(leases.held(a), true)
    second()
    assert.equal(leases.held(a), false)
  })

  it("releasing the same lease twice does not free another reader's lease", () => {
    const leases = new Leases()
    const first = leases.acquire(a)
    leases.acquire(a)
    first()
    first()
    assert.equal(leases.held(a), true)
  })

  it('digests are counted apart', () => {
    const leases = new Leases()
    const release = leases.acquire(a)
    assert.equal(leases.held(b), false)
    leases.acquire(b)()
    assert.equal(leases.held(b), false)
    release()
    assert.equal(leases.held(a), false)
  })
})
