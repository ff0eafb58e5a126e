import assert from 'node:assert/strict'
import * as p2p from '../../../src/p2p/constants.js'
import * as claim from '../../../src/p2p/claim/constants.js'
import * as data from '../../../src/p2p/data/constants.js'
import { MAX_FRAME_ERROR_CHARS } from '../../../src/p2p/json-frame.js'
import { MAX_HEADER_MESSAGE_CHARS } from '../../../src/p2p/fetch/frames.js'
import { MAX_ANSWER_MESSAGE_CHARS } from '../../../src/p2p/claim/frames.js'

/** yamux's default receive window (@chainsafe/libp2p-yamux). */
const YAMUX_WINDOW = 16 * 1024 * 1024

describe('p2p constants: the relations the protocols rely on', () => {
  it('protocols live in the p2p-cache namespace, never the public IPFS one; the newest version is offered first', () => {
    for (const id of [
      p2p.KAD_PROTOCOL,
      p2p.FETCH_PROTOCOL,
      p2p.FETCH_PROTOCOL_DATA,
      p2p.FETCH_PROTOCOL_PIECES,
      p2p.DIALBACK_PROTOCOL,
      claim.CLAIM_PROTOCOL,
      claim.CLAIM_PROTOCOL_SWARM
    ]) assert.match(id, /^\/p2p-cache\//)
    assert.deepEqual(p2p.FETCH_PROTOCOLS, [p2p.FETCH_PROTOCOL_PIECES, p2p.FETCH_PROTOCOL_DATA, p2p.FETCH_PROTOCOL])
    assert.deepEqual(p2p.DATA_CHANNEL_PROTOCOLS, [p2p.FETCH_PROTOCOL_PIECES, p2p.FETCH_PROTOCOL_DATA])
  })

  it('a claim holder renews several times within one lease, and a renewal that timed out once still lands within it', () => {
    assert.ok(claim.CLAIM_RENEW_MS * 3 <= claim.CLAIM_LEASE_MS)
    assert.ok(claim.CLAIM_RENEW_MS + claim.CLAIM_TIMEOUT_MS < claim.CLAIM_LEASE_MS)
    assert.ok(claim.CLAIM_DONE_TTL_MS <= p2p.PROVIDE_VALIDITY_MS, 'the done record does not outlive the provider record')
    assert.ok(claim.CLAIM_TIMEOUT_MS >= p2p.DIAL_TIMEOUT_MS, 'a claim round trip may include a dial')
  })

  it('piece hashes of one answer fit in a response header, and a piece is worth the data channel', () => {
    assert.ok(p2p.MAX_HASHES_PER_ANSWER * 64 + 1024 <= p2p.MAX_RESPONSE_HEADER_BYTES)
    assert.ok(p2p.PIECE_SIZE >= data.DATA_MIN_BYTES)
  })

  it('provider records are re-announced well before they expire', () => {
    assert.ok(p2p.REPROVIDE_INTERVAL_MS < p2p.REPROVIDE_THRESHOLD_MS)
    assert.ok(p2p.REPROVIDE_THRESHOLD_MS < p2p.PROVIDE_VALIDITY_MS)
    assert.ok(p2p.PROVIDERS_CLEANUP_S * 1000 < p2p.PROVIDE_VALIDITY_MS)
  })

  it('retry back-offs grow from a minimum to a larger maximum', () => {
    assert.ok(p2p.ANNOUNCE_RETRY_MIN_MS < p2p.ANNOUNCE_RETRY_MAX_MS)
    assert.ok(p2p.BOOTSTRAP_RETRY_MIN_MS < p2p.BOOTSTRAP_RETRY_MAX_MS)
  })

  it('a paused stream is not reset while data in flight lands: the read buffer holds the high-water mark plus a yamux window', () => {
    assert.ok(p2p.MAX_READ_BUFFER >= p2p.RECEIVE_HIGH_WATER + YAMUX_WINDOW)
    assert.ok(p2p.SEND_CHUNK < p2p.RECEIVE_HIGH_WATER)
  })

  it('error messages fit the frames that carry them', () => {
    assert.ok(MAX_FRAME_ERROR_CHARS <= MAX_HEADER_MESSAGE_CHARS)
    assert.ok(MAX_FRAME_ERROR_CHARS <= MAX_ANSWER_MESSAGE_CHARS)
    assert.ok(MAX_HEADER_MESSAGE_CHARS * 3 < p2p.MAX_RESPONSE_HEADER_BYTES, 'a message of 3-byte characters still fits the header frame')
  })

  it('the data channel: a requester gives up connecting before the offer expires; small transfers stay on libp2p', () => {
    assert.ok(data.DATA_CONNECT_TIMEOUT_MS < data.DATA_OFFER_TTL_MS)
    assert.ok(data.DATA_MIN_BYTES >= 64 * 1024)
    assert.match(data.DATA_TLS_CIPHERS, /^TLS_AES_128_GCM_SHA256:/)
    assert.ok(!/CBC|NULL|RC4/.test(data.DATA_TLS_CIPHERS))
  })
})
