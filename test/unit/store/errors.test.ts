import assert from 'node:assert/strict'
import { StoreError, StoreFullError, StoreUnavailableError, isNoSpace, writeError } from '../../../src/store/errors.js'

function sysError (code: string, message = `${code}: failed`): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code })
}

describe('store errors', () => {
  describe('isNoSpace', () => {
    it('recognises a full filesystem or quota by error code', () => {
      assert.equal(isNoSpace(sysError('ENOSPC')), true)
      assert.equal(isNoSpace(sysError('EDQUOT')), true)
    })

    it("recognises LevelDB's message-only IO errors, also when wrapped as a cause", () => {
      assert.equal(isNoSpace(new Error('IO error: /cache/index/000005.log: No space left on device')), true)
      const wrapped = new Error('Database failed to open', { cause: new Error('IO error: Disk quota exceeded') })
      assert.equal(isNoSpace(wrapped), true)
    })

    it('does not take other failures or non-errors for a full disk', () => {
      assert.equal(isNoSpace(sysError('EACCES')), false)
      assert.equal(isNoSpace(sysError('EIO')), false)
      assert.equal(isNoSpace('ENOSPC'), false)
      assert.equal(isNoSpace(undefined), false)
      assert.equal(isNoSpace({ code: 'ENOSPC', message: 'not an Error' }), false)
    })

    it('looks only a few causes deep', () => {
      let err: Error = sysError('ENOSPC')
      for (let i = 0; i < 5; i++) err = new Error(`wrapper ${i}`, { cause: err })
      assert.equal(isNoSpace(err), false)
    })
  })

  it('writeError turns a full filesystem into a StoreFullError that keeps the cause, and passes anything else through', () => {
    const full = sysError('ENOSPC')
    const mapped = writeError(full, '/cache')
    assert.ok(mapped instanceof StoreFullError)
    assert.ok(mapped instanceof StoreError)
    assert.equal(mapped.cause, full)
    const other = sysError('EIO')
    assert.equal(writeError(other, '/cache'), other)
  })

  it('StoreFullError names CACHE_DIR and says what happens and what to do', () => {
    const err = new StoreFullError('/var/cache/p2p')
    assert.equal(err.name, 'StoreFullError')
    assert.match(err.message, /CACHE_DIR=\/var\/cache\/p2p is full/)
    assert.match(err.message, /served without being stored/)
    assert.match(err.message, /free space there, or set CACHE_MAX_SIZE/)
  })

  it('StoreUnavailableError explains running out of file descriptors with the limit to raise', () => {
    const err = new StoreUnavailableError('sha256:abc', '/cache', sysError('EMFILE'))
    assert.match(err.message, /cannot open sha256:abc in CACHE_DIR=\/cache \(EMFILE\)/)
    assert.match(err.message, /ulimit -n/)
    assert.match(new StoreUnavailableError('x', '/cache', sysError('ENFILE')).message, /file descriptors/)
  })

  it('StoreUnavailableError for other failures points at the disk and permissions, naming the failure', () => {
    const err = new StoreUnavailableError('x', '/cache', sysError('EIO'))
    assert.match(err.message, /\(EIO\): check the disk/)
    assert.doesNotMatch(err.message, /ulimit/)
    assert.match(
      new StoreUnavailableError('x', '/cache', new Error('boom')).message,
      /\(boom\)/,
      'without a code, the message says what failed'
    )
  })
})
