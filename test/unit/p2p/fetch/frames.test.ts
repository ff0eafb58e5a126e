import assert from 'node:assert/strict'
import { refused } from '../frame-refused.js'
import {
  decodeRequest,
  decodeResponseHeader,
  encodeFrame,
  MAX_HEADER_MESSAGE_CHARS,
  type FetchResponseHeader
} from '../../../../src/p2p/fetch/frames.js'
import { MAX_REQUEST_BYTES, MAX_RESPONSE_HEADER_BYTES } from '../../../../src/p2p/constants.js'
import { tagKey } from '../../../../src/oci/tag-key.js'
import { apiKey } from '../../../../src/keys/api-key.js'
import type { Digest } from '../../../../src/oci/digest.js'

const DIGEST = `sha256:${'ab'.repeat(32)}` as Digest
const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))

describe('fetch frames (/p2p-cache/fetch/1.x): request and response header', () => {
  it('round-trips a request for each kind of key: digest, tag key, API key', () => {
    const keys = [
      DIGEST,
      tagKey('docker.io', 'library/alpine', '3.20', 'index'),
      apiKey('api.github.com /repos/o/r/releases?per_page=5', 'application/json')
    ]
    for (const key of keys) {
      assert.deepEqual(decodeRequest(encodeFrame({ key })), { key })
      assert.deepEqual(decodeRequest(encodeFrame({ key, start: 5, end: 10, data: true })), { key, start: 5, end: 10, data: true })
    }
    assert.deepEqual(
      decodeRequest(encodeFrame({ key: DIGEST, start: 7, end: 7 })),
      { key: DIGEST, start: 7, end: 7 },
      'start === end asks for the header only'
    )
  })

  it('a request fits in MAX_REQUEST_BYTES even with the longest key the schema takes', () => {
    const longest = {
      key: `api:${'u'.repeat(64)} /${'p'.repeat(400)}#${'a'.repeat(200)}`,
      start: Number.MAX_SAFE_INTEGER,
      end: Number.MAX_SAFE_INTEGER,
      data: true
    }
    assert.doesNotThrow(() => decodeRequest(json(longest)))
    assert.ok(encodeFrame(longest as never).byteLength <= MAX_REQUEST_BYTES)
  })

  it('refuses a request whose key is no digest, tag key or API key, and says which forms are valid', () => {
    for (const key of [
      'sha256:AB',
      `sha512:${'ab'.repeat(64)}`,
      `sha256:${'AB'.repeat(32)}`,
      'tag:docker.io/../etc:x#index',
      'api:host no-slash#',
      '',
      'k'.repeat(701)
    ]) {
      refused(() => decodeRequest(json({ key })), /^bad fetch request: .*key must be sha256:<64 lowercase hex>/)
    }
    refused(() => decodeRequest(json({ key: 42 })), /^bad fetch request/)
    refused(() => decodeRequest(json({})), /^bad fetch request/)
  })

  it('refuses ranges that are negative, fractional, unsafe, or end before they start', () => {
    for (const range of [
      { start: -1 },
      { start: 1.5 },
      { end: Number.MAX_SAFE_INTEGER + 2 },
      { start: '0' },
      { start: 10, end: 9 },
      { end: -1 }
    ]) {
      refused(() => decodeRequest(json({ key: DIGEST, ...range })), /^bad fetch request/)
    }
    refused(() => decodeRequest(json({ key: DIGEST, start: 10, end: 9 })), /end must not be before start/)
    refused(() => decodeRequest(json({ key: DIGEST, data: 'yes' })), /^bad fetch request/)
  })

  it('refuses unknown keys in a request, however long their names, with a bounded message', () => {
    refused(() => decodeRequest(json({ key: DIGEST, fetchThrough: true })), /^bad fetch request: .*fetchThrough/)
    refused(() => decodeRequest(json({ key: DIGEST, ['x'.repeat(5000)]: 1 })), /^bad fetch request: .*\.\.\.$/)
  })

  it('refuses frames that are not UTF-8 JSON objects', () => {
    refused(() => decodeRequest(new Uint8Array([0xc3, 0x28])), /^fetch request is not UTF-8 JSON$/)
    refused(() => decodeResponseHeader(new TextEncoder().encode('{"status":"ok"')), /^fetch response header is not UTF-8 JSON$/)
    refused(() => decodeRequest(json([DIGEST])), /^bad fetch request/)
  })

  it('round-trips every kind of response header', () => {
    const headers: FetchResponseHeader[] = [
      { status: 'ok', size: 100, start: 10, length: 90, mediaType: 'application/octet-stream', inProgress: true },
      { status: 'ok', size: 0, start: 0, length: 0 },
      {
        status: 'ok',
        size: 5,
        start: 0,
        length: 0,
        tag: { digest: DIGEST, mediaType: 'application/vnd.oci.image.index.v1+json', size: 5, resolvedAt: 1_700_000_000_000 }
      },
      {
        status: 'ok',
        size: 3,
        start: 0,
        length: 3,
        api: {
          status: 200,
          headers: { etag: '"x"', 'content-type': 'application/json' },
          body: DIGEST,
          validator: '0123456789abcdef0123456789abcdef'
        }
      },
      { status: 'ok', size: 2_000_000, start: 0, length: 2_000_000, data: { port: 9001, ticket: 'ab'.repeat(16), key: 'cd'.repeat(32) } },
      { status: 'not_found' },
      { status: 'busy', message: 'too many uploads' },
      { status: 'bad_request', message: 'm'.repeat(MAX_HEADER_MESSAGE_CHARS) },
      { status: 'error', message: 'disk read failed' }
    ]
    for (const header of headers) {
      const frame = encodeFrame(header)
      assert.ok(frame.byteLength <= MAX_RESPONSE_HEADER_BYTES, `${header.status} header fits the frame limit`)
      assert.deepEqual(decodeResponseHeader(frame), header)
    }
  })

  it('refuses an ok header without size, start and length, or whose bytes run past the size', () => {
    for (const header of [
      { status: 'ok' },
      { status: 'ok', size: 10, start: 0 },
      { status: 'ok', size: 10, start: 5, length: 6 },
      { status: 'ok', size: 10, length: 10 }
    ]) {
      refused(() => decodeResponseHeader(json(header)), /an ok header carries size, start and length within size/)
    }
  })

  it('refuses a header message longer than MAX_HEADER_MESSAGE_CHARS, and an unknown status', () => {
    refused(
      () => decodeResponseHeader(json({ status: 'error', message: 'm'.repeat(MAX_HEADER_MESSAGE_CHARS + 1) })),
      /^bad fetch response header/
    )
    refused(() => decodeResponseHeader(json({ status: 'gone' })), /^bad fetch response header/)
    refused(() => decodeResponseHeader(json({ status: 'not_found', mediaType: 'x'.repeat(256) })), /^bad fetch response header/)
  })

  it('refuses tag and API answers with bad digests, statuses, validators or too many headers', () => {
    const ok = { status: 'ok', size: 1, start: 0, length: 1 }
    refused(
      () => decodeResponseHeader(json({ ...ok, tag: { digest: 'sha256:abc', mediaType: 'x', resolvedAt: 1 } })),
      /tag digest must be sha256:<64 lowercase hex>/
    )
    refused(() => decodeResponseHeader(json({ ...ok, tag: { digest: DIGEST, mediaType: 'x' } })), /^bad fetch response header/)
    refused(
      () => decodeResponseHeader(json({ ...ok, api: { status: 200, headers: {}, body: `sha256:${'AB'.repeat(32)}` } })),
      /api body must be sha256:<64 lowercase hex>/
    )
    refused(() => decodeResponseHeader(json({ ...ok, api: { status: 199, headers: {}, body: DIGEST } })), /^bad fetch response header/)
    refused(
      () => decodeResponseHeader(json({ ...ok, api: { status: 200, headers: {}, body: DIGEST, validator: 'token-ghp_x' } })),
      /^bad fetch response header/
    )
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`h${i}`, 'v']))
    refused(() => decodeResponseHeader(json({ ...ok, api: { status: 200, headers: many, body: DIGEST } })), /at most 100 headers/)
    refused(
      () => decodeResponseHeader(json({ ...ok, api: { status: 200, headers: { h: 1 }, body: DIGEST } })),
      /^bad fetch response header/
    )
  })

  it('refuses a data channel offer with a bad port, ticket or key, or an extra field', () => {
    const ok = { status: 'ok', size: 1, start: 0, length: 1 }
    const offer = { port: 9001, ticket: 'ab'.repeat(16), key: 'cd'.repeat(32) }
    for (const bad of [
      { ...offer, port: 0 },
      { ...offer, port: 65536 },
      { ...offer, ticket: 'AB'.repeat(16) },
      { ...offer, key: 'cd'.repeat(31) },
      { ...offer, host: '10.0.0.1' }
    ]) {
      refused(() => decodeResponseHeader(json({ ...ok, data: bad })), /^bad fetch response header/)
    }
  })
})
