import assert from 'node:assert/strict'
import { isLoopback } from '../../../src/http/loopback.js'

describe('isLoopback: who counts as this host', () => {
  it('all of 127.0.0.0/8, its IPv4-mapped form, and ::1', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::ffff:127.0.0.1', '::1']) assert.equal(isLoopback(a), true, a)
  })

  it('nothing else: LAN addresses, mapped LAN addresses, names, look-alikes, unknown', () => {
    for (
      const a of ['10.0.0.1', '::ffff:10.0.0.1', '0.0.0.0', '::', 'localhost', '127.example.com', '1127.0.0.1', 'fe80::1', '', undefined]
    ) {
      assert.equal(isLoopback(a), false, String(a))
    }
  })
})
