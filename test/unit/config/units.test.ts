import assert from 'node:assert/strict'
import { formatBytes, parseDuration, parseSize } from '../../../src/config/units.js'

describe('config units: sizes and durations as people write them', () => {
  it('reads decimal units as powers of 1000 and binary units as powers of 1024, case-insensitively', () => {
    assert.equal(parseSize('20GB'), 20e9)
    assert.equal(parseSize('20gb'), 20e9)
    assert.equal(parseSize('1kB'), 1000)
    assert.equal(parseSize('1T'), 1e12)
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2)
    assert.equal(parseSize('2Gi'), 2 * 1024 ** 3)
    assert.equal(parseSize('1TiB'), 1024 ** 4)
  })

  it('reads a bare number, or one in B, as bytes; spaces around the unit and a fraction are allowed', () => {
    assert.equal(parseSize('1048576'), 1048576)
    assert.equal(parseSize('100B'), 100)
    assert.equal(parseSize(' 1.5 GiB '), 1.5 * 1024 ** 3)
    assert.equal(parseSize('1.0000001kB'), 1000, 'a fraction of a byte is dropped')
  })

  it('refuses what is not a size: unknown units, signs, exponents, empty text', () => {
    for (const text of ['20XB', '-1GB', '+1GB', '1e9', '', 'GB', '1 2GB', '1,5GB', '.5GB', '0x10']) {
      assert.equal(parseSize(text), undefined, text)
    }
  })

  it('refuses a size at or past 2^53 bytes rather than reading an approximation or Infinity', () => {
    assert.equal(parseSize(String(2 ** 53 - 1)), 2 ** 53 - 1)
    assert.equal(parseSize(String(2 ** 53)), undefined)
    assert.equal(parseSize('9007199254740993'), undefined, 'not rounded to a neighbour')
    assert.equal(parseSize('8PB'), undefined, 'no PB unit')
    assert.equal(parseSize('9000TB'), 9e15)
    assert.equal(parseSize('10000TB'), undefined, 'past 2^53')
    assert.equal(parseSize('9'.repeat(400)), undefined, 'Infinity')
  })

  it('reads durations in ms, s, m, h and d', () => {
    assert.equal(parseDuration('1500ms'), 1500)
    assert.equal(parseDuration('30s'), 30_000)
    assert.equal(parseDuration('10m'), 600_000)
    assert.equal(parseDuration('1H'), 3_600_000)
    assert.equal(parseDuration('2d'), 172_800_000)
    assert.equal(parseDuration(' 1.5 s '), 1500)
    assert.equal(parseDuration('0s'), 0)
  })

  it('refuses a duration without a unit, with an unknown unit, or negative', () => {
    for (const text of ['10', '', 's', '5 min', '1w', '-1s', '1e3ms', '1h30m']) {
      assert.equal(parseDuration(text), undefined, text)
    }
  })

  it('refuses a duration at or past 2^53 ms (about 104 days is fine, 10^9 days is not)', () => {
    assert.equal(parseDuration('104d'), 104 * 86_400_000)
    assert.equal(parseDuration(`${2 ** 53}ms`), undefined)
    assert.equal(parseDuration('1000000000d'), undefined)
    assert.equal(parseDuration(`${'9'.repeat(400)}s`), undefined)
  })

  it('formats bytes in binary units with one decimal, plain bytes without', () => {
    assert.equal(formatBytes(0), '0 B')
    assert.equal(formatBytes(1023), '1023 B')
    assert.equal(formatBytes(1024), '1.0 KiB')
    assert.equal(formatBytes(3.4 * 1024 ** 2), '3.4 MiB')
    assert.equal(formatBytes(20e9), '18.6 GiB')
    assert.equal(formatBytes(5 * 1024 ** 5), '5120.0 TiB', 'TiB is the largest unit')
  })
})
