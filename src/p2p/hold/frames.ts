import { z } from 'zod'
import { isDigest, type Digest } from '../../oci/digest.js'
import { parseRecordKey, type RecordKey } from '../../keys/record-key.js'
import { decodeJsonFrame, encodeJsonFrame } from '../json-frame.js'
import { MAX_RECORD_CHARS } from '../fetch/frames.js'
import { HOLD_MAX_KEYS, HOLD_MAX_RECORDS } from './constants.js'

/** A digest to hold: a blob, or a manifest with its media type (served with it). */
export interface HoldKey {
  digest: Digest
  mediaType?: string
}

/** A small record to keep too (SwarmRecords): its key and its JSON value. */
export interface HoldRecord {
  key: RecordKey
  value: string
}

/**
 * `/p2p-cache/hold/1.0.0`: one length-prefixed JSON frame each way on a fresh stream. The asker
 * names digests it holds; the holder fetches those it lacks from the asker (the verified peer
 * fetch), keeps them against eviction until `keepUntil`, keeps the records, announces all of it,
 * and answers `held` — or `refused` (no room, a kind it does not share) or `failed` (the fetch
 * failed), with a message. A malformed frame is answered `bad_request`.
 */
export interface HoldRequest {
  keys: HoldKey[]
  records?: HoldRecord[]
  /** ms since the epoch, on the asker's clock. */
  keepUntil: number
}

export type HoldAnswer =
  | { status: 'held' }
  | { status: 'refused' | 'failed' | 'bad_request', message: string }

/** Longest `message` of an answer. */
export const MAX_HOLD_MESSAGE_CHARS = 1000

const requestSchema = z.strictObject({
  keys: z.array(z.strictObject({
    digest: z.string().refine(isDigest, 'digest must be sha256:<64 lowercase hex>'),
    mediaType: z.string().max(255).optional()
  })).max(HOLD_MAX_KEYS),
  records: z.array(z.strictObject({
    key: z.string().max(1100).refine(k => parseRecordKey(k as RecordKey) !== undefined, 'a record key rec:<kind> <name>'),
    value: z.string().max(MAX_RECORD_CHARS)
  })).max(HOLD_MAX_RECORDS).optional(),
  keepUntil: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
})

const answerSchema = z.discriminatedUnion('status', [
  z.strictObject({ status: z.literal('held') }),
  z.strictObject({ status: z.enum(['refused', 'failed', 'bad_request']), message: z.string().max(MAX_HOLD_MESSAGE_CHARS) })
])

export function encodeHoldFrame (value: HoldRequest | HoldAnswer): Uint8Array {
  return encodeJsonFrame(value)
}

/** @throws FrameError when `bytes` is not a hold request */
export function decodeHoldRequest (bytes: Uint8Array): HoldRequest {
  return decodeJsonFrame(bytes, requestSchema, 'hold request') as HoldRequest
}

/** @throws FrameError when `bytes` is not a hold answer */
export function decodeHoldAnswer (bytes: Uint8Array): HoldAnswer {
  return decodeJsonFrame(bytes, answerSchema, 'hold answer')
}
