import assert from 'node:assert/strict'
import { newSwarmKey, parseSwarmKey } from '../../../src/p2p/swarm-key.js'

const HEX = '0123456789abcdef'.repeat(4)
const PNET = `/key/swarm/psk/1.0.0/\n/base16/\n${HEX}`
const text = (key: Uint8Array | undefined): string | undefined => key === undefined ? undefined : new TextDecoder().decode(key)

describe('swarm keys (CACHE_SWARM_KEY)', () => {
  it('a new key is 32 random bytes as 64 lowercase hex characters, different each time', () => {
    const key = newSwarmKey()
    assert.match(key, /^[0-9a-f]{64}$/)
    assert.notEqual(newSwarmKey(), key)
    assert.ok(parseSwarmKey(key) !== undefined)
  })

  it('64 hex characters become the swarm.key text @libp2p/pnet reads, lowercased', () => {
    assert.equal(text(parseSwarmKey(HEX)), PNET)
    assert.equal(text(parseSwarmKey(HEX.toUpperCase())), PNET)
    assert.equal(text(parseSwarmKey(`  ${HEX}\n`)), PNET)
  })

  it('the three-line swarm.key text is accepted with LF, CRLF, or literal \\n separators (an env var on one line)', () => {
    for (const form of [
      PNET,
      PNET.replaceAll('\n', '\r\n'),
      PNET.replaceAll('\n', '\\n'),
      `\n${PNET}\n\n`,
      ` /key/swarm/psk/1.0.0/ \n /base16/ \n ${HEX} `
    ]) {
      assert.equal(text(parseSwarmKey(form)), PNET, JSON.stringify(form))
    }
  })

  it('anything else is refused (undefined): short or long keys, non-hex, other encodings, extra lines', () => {
    for (const bad of [
      '',
      ' ',
      'not-a-key',
      HEX.slice(1),
      `${HEX}0`,
      `${HEX.slice(1)}g`,
      `0x${HEX.slice(2)}`,
      `/key/swarm/psk/1.0.0/\n/base64/\n${HEX}`,
      `/key/swarm/psk/2.0.0/\n/base16/\n${HEX}`,
      `/base16/\n${HEX}`,
      `${PNET}\nextra`,
      `${HEX}\n${HEX}`
    ]) {
      assert.equal(parseSwarmKey(bad), undefined, JSON.stringify(bad))
    }
  })
})
