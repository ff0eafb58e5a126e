import { z } from 'zod'
import { isDigest, type Digest } from '../../oci/digest.js'
import { isTagKey, type TagKey } from '../../oci/tag-key.js'
import { isApiKey, type ApiKey } from '../../keys/api-key.js'
import { isRecordKey, type RecordKey } from '../../keys/record-key.js'
import { decodeJsonFrame, encodeJsonFrame } from '../json-frame.js'
import type { DataOffer } from '../data/server.js'
import { MAX_HASHES_PER_ANSWER } from '../constants.js'

export { FrameError } from '../json-frame.js'

/**
 * `/p2p-cache/fetch/1.0.0` frames. Both are one length-prefixed (unsigned varint) JSON object:
 * the request, then the response header; after an `ok` header come exactly `length` raw bytes
 * and the server closes its side.
 */
export interface FetchRequest {
  /**
   * A blob digest; a tag key (the answer is a `tag` record in the header, no bytes); or an API
   * response key (an `api` record in the header, then its body, verified by the digest in it); or
   * a small record's key (a `record` in the header, no bytes).
   */
  key: Digest | TagKey | ApiKey | RecordKey
  /** First byte wanted (default 0). */
  start?: number
  /** One past the last byte wanted (default: the end). `start === end` asks for the header only. */
  end?: number
  /** 1.1.0: the requester can take the bytes over the data channel (see p2p/data). */
  data?: boolean
  /**
   * 1.2.0: a range of pieces for a node that verifies each one against piece hashes. A node still
   * receiving the blob from peers serves it from the bytes it already holds (and follows its own
   * download to `end`), where a 1.1.0 request would get `not_found`; one holding nothing at
   * `start` answers `busy` with `have`. The span's last byte is not held back unless it is the
   * blob's last byte.
   */
  pieces?: boolean
  /**
   * 1.2.0: the sha256 of each PIECE_SIZE piece from this index on, instead of bytes: the answer is
   * an `ok` header with `hashes` (possibly none yet, for a download in progress) and no bytes.
   */
  hashes?: number
}

export type FetchStatus = 'ok' | 'not_found' | 'busy' | 'bad_request' | 'error'

export interface FetchResponseHeader {
  status: FetchStatus
  /** Size of the whole blob (ok). */
  size?: number
  /** Offset and count of the bytes that follow (ok). */
  start?: number
  length?: number
  mediaType?: string
  message?: string
  /** The bytes come from this node's download in progress: they follow it as it arrives. */
  inProgress?: boolean
  /** The answer to a tag key: what the peer last resolved the tag to, and when. */
  tag?: TagAnswer
  /** The answer to an API key: the stored response; its body (digest `body`) follows. */
  api?: ApiRecordAnswer
  /** The answer to a record key (SwarmRecords). */
  record?: RecordAnswer
  /**
   * 1.1.0: the bytes do not follow on this stream but on the data channel, with this one-time
   * key; the server closes the stream after the header.
   */
  data?: DataOffer
  /** 1.2.0: bytes [0, have) of the blob are verified here (a `busy` piece answer, a hash answer). */
  have?: number
  /** 1.2.0: the bytes come from this node's own download from other peers (it relays verified pieces). */
  relayed?: boolean
  /**
   * 1.2.0: which copy of a download in progress the answer comes from: a new value each time that
   * copy starts over, so piece hashes and pieces of two copies are never mixed.
   */
  epoch?: string
  /** 1.2.0: the answer to a `hashes` request. */
  hashes?: PieceHashes
}

/** Piece hashes from a node's copy: pieces `from`, `from + 1`, ... as 64 hex characters each. */
export interface PieceHashes {
  /** PIECE_SIZE of the answering node (a receiver refuses hashes of another piece size). */
  pieceSize: number
  from: number
  hex: string
}

export interface ApiRecordAnswer {
  status: number
  headers: Record<string, string>
  body: Digest
  /** Whose validators `headers` hold (a fleet credential's validator identity), if known. */
  validator?: string
}

/** A small record as a peer holds it: its kind's JSON value, and when it was made (ms since the epoch). */
export interface RecordAnswer {
  value: string
  storedAt: number
}

/** Longest record value (JSON text) a peer may send. */
export const MAX_RECORD_CHARS = 4096

export interface TagAnswer {
  digest: Digest
  mediaType: string
  size?: number
  resolvedAt: number
}

/** Longest `message` of a response header: the server cuts what it sends to it, the client refuses more. */
export const MAX_HEADER_MESSAGE_CHARS = 1000

const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

const requestSchema = z.strictObject({
  key: z.string().max(700).refine(
    k => isDigest(k) || isTagKey(k) || isApiKey(k) || isRecordKey(k),
    'key must be sha256:<64 lowercase hex>, tag:<upstream>/<repo>:<tag>#<index|single>, api:<upstream> <path>#<accept> or rec:<kind> <name>'
  ),
  start: offset.optional(),
  end: offset.optional(),
  data: z.boolean().optional(),
  pieces: z.boolean().optional(),
  hashes: z.number().int().min(0).max(1 << 30).optional()
}).refine(r => r.end === undefined || r.end >= (r.start ?? 0), 'end must not be before start')

const headerSchema = z.strictObject({
  status: z.enum(['ok', 'not_found', 'busy', 'bad_request', 'error']),
  size: offset.optional(),
  start: offset.optional(),
  length: offset.optional(),
  mediaType: z.string().max(255).optional(),
  message: z.string().max(MAX_HEADER_MESSAGE_CHARS).optional(),
  inProgress: z.boolean().optional(),
  tag: z.strictObject({
    digest: z.string().refine(isDigest, 'tag digest must be sha256:<64 lowercase hex>'),
    mediaType: z.string().max(255),
    size: offset.optional(),
    resolvedAt: offset
  }).optional(),
  api: z.strictObject({
    status: z.number().int().min(200).max(599),
    headers: z.record(z.string().max(100), z.string().max(8192)).refine(h => Object.keys(h).length <= 100, 'at most 100 headers'),
    body: z.string().refine(isDigest, 'api body must be sha256:<64 lowercase hex>'),
    validator: z.string().regex(/^[0-9a-f]{32}$/).optional()
  }).optional(),
  record: z.strictObject({
    value: z.string().max(MAX_RECORD_CHARS),
    storedAt: offset
  }).optional(),
  data: z.strictObject({
    port: z.number().int().min(1).max(65535),
    ticket: z.string().regex(/^[0-9a-f]{32}$/),
    key: z.string().regex(/^[0-9a-f]{64}$/)
  }).optional(),
  have: offset.optional(),
  relayed: z.boolean().optional(),
  epoch: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  hashes: z.strictObject({
    pieceSize: z.number().int().min(1).max(1 << 30),
    from: z.number().int().min(0).max(1 << 30),
    hex: z.string().max(64 * MAX_HASHES_PER_ANSWER).regex(/^(?:[0-9a-f]{64})*$/, 'hashes are 64 lowercase hex characters each')
  }).optional()
}).refine(
  h => h.status !== 'ok' || (h.size !== undefined && h.start !== undefined && h.length !== undefined && h.start + h.length <= h.size),
  'an ok header carries size, start and length within size'
)

export function encodeFrame (value: FetchRequest | FetchResponseHeader): Uint8Array {
  return encodeJsonFrame(value)
}

export function decodeRequest (bytes: Uint8Array): FetchRequest {
  return decodeJsonFrame(bytes, requestSchema, 'fetch request') as FetchRequest
}

export function decodeResponseHeader (bytes: Uint8Array): FetchResponseHeader {
  return decodeJsonFrame(bytes, headerSchema, 'fetch response header') as FetchResponseHeader
}
