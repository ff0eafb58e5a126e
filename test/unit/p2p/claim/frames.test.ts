import assert from 'node:assert/strict'
import { refused } from '../frame-refused.js'
import {
  decodeClaimAnswer,
  decodeClaimRequest,
  encodeClaimFrame,
  MAX_ANSWER_MESSAGE_CHARS,
  type ClaimRequest,
  type WireClaimAnswer
} from '../../../../src/p2p/claim/frames.js'
import type { Digest } from '../../../../src/oci/digest.js'

const KEY = `sha256:${'ab'.repeat(32)}` as Digest
const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))

describe('claim frames (/p2p-cache/claim/1.0.0)', () => {
  it('round-trips every op and every answer', () => {
    const requests: ClaimRequest[] = [
      { op: 'claim', key: KEY },
      { op: 'claim', key: KEY, failed: [PEER] },
      { op: 'renew', key: KEY },
      { op: 'done', key: KEY },
      { op: 'release', key: KEY },
      { op: 'claim', key: KEY, failed: Array(8).fill(PEER) },
      { op: 'claim', key: KEY, pieces: true, direct: true }
    ]
    for (const r of requests) assert.deepEqual(decodeClaimRequest(encodeClaimFrame(r)), r)
    const answers: WireClaimAnswer[] = [
      { status: 'fetch', leaseMs: 10_000 },
      { status: 'fetch', leaseMs: 600_000 },
      { status: 'join', peer: PEER, addrs: [`/ip4/10.0.0.1/tcp/9000/p2p/${PEER}`], committed: false },
      { status: 'join', peer: PEER, addrs: [], committed: true },
      { status: 'ok' },
      { status: 'bad_request', message: 'm'.repeat(MAX_ANSWER_MESSAGE_CHARS) },
      { status: 'redirect', peer: PEER, addrs: [`/ip4/10.0.0.2/tcp/9000/p2p/${PEER}`] }
    ]
    for (const a of answers) assert.deepEqual(decodeClaimAnswer(encodeClaimFrame(a)), a)
  })

  it('refuses a request with an unknown op, a key that is not a digest, or an extra field', () => {
    refused(() => decodeClaimRequest(json({ op: 'steal', key: KEY })), /^bad claim request/)
    for (const key of ['tag:docker.io/library/alpine:3#index', `sha256:${'AB'.repeat(32)}`, 'sha256:ab', 7]) {
      refused(() => decodeClaimRequest(json({ op: 'claim', key })), /^bad claim request/)
    }
    refused(() => decodeClaimRequest(json({ op: 'claim', key: 'x' })), /key must be sha256:<64 lowercase hex>/)
    refused(() => decodeClaimRequest(json({ op: 'claim', key: KEY, leaseMs: 1 })), /^bad claim request/)
    refused(() => decodeClaimRequest(json({ op: 'claim', key: KEY, direct: 'yes' })), /^bad claim request/)
  })

  it('refuses a redirect (1.2.0) without a base58 peer, or with too many or too long addresses', () => {
    refused(() => decodeClaimAnswer(json({ status: 'redirect', peer: 'not a peer', addrs: [] })), /^bad claim answer/)
    refused(() => decodeClaimAnswer(json({ status: 'redirect', peer: PEER })), /^bad claim answer/)
    refused(
      () => decodeClaimAnswer(json({ status: 'redirect', peer: PEER, addrs: Array(17).fill('/ip4/1.2.3.4/tcp/1') })),
      /^bad claim answer/
    )
    refused(() => decodeClaimAnswer(json({ status: 'redirect', peer: PEER, addrs: ['/'.repeat(301)] })), /^bad claim answer/)
  })

  it('refuses a failed list longer than 8, or naming something that is not a base58 peer ID', () => {
    refused(() => decodeClaimRequest(json({ op: 'claim', key: KEY, failed: Array(9).fill(PEER) })), /^bad claim request/)
    for (const bad of ['', '0OIl', 'p'.repeat(101), 'peer id', 3]) {
      refused(() => decodeClaimRequest(json({ op: 'claim', key: KEY, failed: [bad] })), /^bad claim request/)
    }
    refused(() => decodeClaimRequest(json({ op: 'claim', key: KEY, failed: ['0'] })), /a peer ID in base58/)
  })

  it('refuses answers out of range: a lease of 0 or above 10 minutes, too many or too long addresses, a long message', () => {
    for (const leaseMs of [0, 600_001, 1.5, -1]) refused(() => decodeClaimAnswer(json({ status: 'fetch', leaseMs })), /^bad claim answer/)
    refused(
      () => decodeClaimAnswer(json({ status: 'join', peer: PEER, addrs: Array(17).fill('/ip4/1.2.3.4/tcp/1'), committed: true })),
      /^bad claim answer/
    )
    refused(() => decodeClaimAnswer(json({ status: 'join', peer: PEER, addrs: ['/'.repeat(301)], committed: true })), /^bad claim answer/)
    refused(() => decodeClaimAnswer(json({ status: 'join', peer: PEER, addrs: [] })), /^bad claim answer/)
    refused(
      () => decodeClaimAnswer(json({ status: 'bad_request', message: 'm'.repeat(MAX_ANSWER_MESSAGE_CHARS + 1) })),
      /^bad claim answer/
    )
  })

  it('refuses an unknown status, fields of another status, and non-JSON, with bounded messages', () => {
    refused(() => decodeClaimAnswer(json({ status: 'maybe' })), /^bad claim answer/)
    refused(() => decodeClaimAnswer(json({ status: 'ok', leaseMs: 5 })), /^bad claim answer/)
    refused(() => decodeClaimAnswer(json({ status: 'ok', ['u'.repeat(10_000)]: true })), /^bad claim answer: .*\.\.\.$/)
    refused(() => decodeClaimAnswer(new Uint8Array([0xff])), /^claim answer is not UTF-8 JSON$/)
    refused(() => decodeClaimRequest(json('claim')), /^bad claim request/)
  })
})
