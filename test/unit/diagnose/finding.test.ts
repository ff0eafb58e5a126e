import assert from 'node:assert/strict'
import { fail, ok, skip, warn } from '../../../src/diagnose/finding.js'

describe('diagnose findings: a verdict, what was seen, and the fix', () => {
  it('warn and fail always carry the fix; ok and skip carry none', () => {
    const w = warn('storage.space', 'disk nearly full', 'lower CACHE_MAX_SIZE')
    const f = fail('listen.http', 'port taken', 'choose CACHE_HTTP_ADDR')
    assert.deepEqual(w, { check: 'storage.space', verdict: 'warn', summary: 'disk nearly full', fix: 'lower CACHE_MAX_SIZE' })
    assert.deepEqual(f, { check: 'listen.http', verdict: 'fail', summary: 'port taken', fix: 'choose CACHE_HTTP_ADDR' })
    assert.equal('fix' in ok('clock', 'in sync'), false)
    assert.deepEqual(skip('clock', 'no Date header'), { check: 'clock', verdict: 'skip', summary: 'no Date header' })
  })

  it('subject and facts appear only when given (the --json output has no undefined keys)', () => {
    const withAll = ok('bootstrap.tcp', 'connects', { rttMs: 1.5 }, '/ip4/10.0.0.1/tcp/9000')
    assert.deepEqual(withAll, {
      check: 'bootstrap.tcp',
      verdict: 'ok',
      summary: 'connects',
      subject: '/ip4/10.0.0.1/tcp/9000',
      facts: { rttMs: 1.5 }
    })
    assert.deepEqual(Object.keys(fail('a', 'b', 'c')), ['check', 'verdict', 'summary', 'fix'])
    assert.deepEqual(Object.keys(skip('a', 'b', 'subject')), ['check', 'verdict', 'summary', 'subject'])
  })
})
