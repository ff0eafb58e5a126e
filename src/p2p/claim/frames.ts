import { z } from 'zod'
import { isDigest, type Digest } from '../../oci/digest.js'
import { decodeJsonFrame, encodeJsonFrame } from '../json-frame.js'
import { CLAIM_OTHERS_MAX } from './constants.js'

/**
 * `/p2p-cache/claim/1.0.0`: who fetches a digest from the upstream, decided by the key's
 * coordinator (the live peer closest to the key by XOR distance). One length-prefixed JSON frame
 * each way on a fresh stream; a malformed frame is a FrameError (json-frame.ts).
 *
 * - `claim`: "I miss `key`". Answer `fetch` (a lease of `leaseMs`: go upstream, renew while the
 *   download progresses) or `join` (read it from `peer`, which is fetching it or has it; 1.1.0
 *   adds `others`, the other holders, receivers still in progress included, for pieces, and
 *   `seeder` when `peer` is such a receiver: the holder fetching it, whose piece hashes to take).
 *   `failed` names peers this node could not read it from (dead, stalled, lying): they are not
 *   named again, and a claim they hold is taken over.
 * - `renew`: the holder's download is progressing; answered like a claim (`fetch` = still yours).
 * - `done`: the holder committed the blob; later claims are sent to it.
 * - `release`: the holder gave up (its clients left, or the upstream failed); answer `ok`.
 *
 * 1.2.0 (issue 23): a node asked for a `claim` on a key it has no entry for, that knows a
 * connected peer closer to the key than itself, answers `redirect` to that peer instead (Kademlia
 * style: views of who is closest differ while routing tables fill, and two nodes that each think
 * they coordinate a key grant two leases). The asker follows it; `direct` asks a node to answer
 * itself (the asker's redirect budget is spent, or the peer it was sent to did not answer).
 */
export type ClaimOp = 'claim' | 'renew' | 'done' | 'release'

export interface ClaimRequest {
  op: ClaimOp
  key: Digest
  failed?: string[]
  /**
   * 1.1.0: the claimant takes the key in pieces and serves the pieces it holds while it receives
   * them (a blob; not a manifest): the coordinator may name it to later joiners.
   */
  pieces?: boolean
  /** 1.2.0: answer it, never `redirect`. */
  direct?: boolean
}

export type ClaimAnswer =
  | { status: 'fetch', leaseMs: number }
  | {
    status: 'join'
    peer: string
    addrs: string[]
    committed: boolean
    others?: Array<{ peer: string, addrs: string[] }>
    seeder?: { peer: string, addrs: string[] }
  }
  | { status: 'ok' }
  | { status: 'bad_request', message: string }

/** 1.2.0: "ask `peer` (at `addrs`), which is closer to the key than I am". Never leaves ClaimService. */
export interface ClaimRedirect {
  status: 'redirect'
  peer: string
  addrs: string[]
}

/** What a claim stream carries back. */
export type WireClaimAnswer = ClaimAnswer | ClaimRedirect

/** Most holders one claim reports failed (the latest ones). */
export const MAX_FAILED_REPORTED = 8

/** Longest `message` of a bad_request answer: the coordinator cuts what it sends to it, the asker refuses more. */
export const MAX_ANSWER_MESSAGE_CHARS = 1000

const peerIdText = z.string().min(1).max(100).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'a peer ID in base58')

const requestSchema = z.strictObject({
  op: z.enum(['claim', 'renew', 'done', 'release']),
  key: z.string().refine(isDigest, 'key must be sha256:<64 lowercase hex>'),
  failed: z.array(peerIdText).max(MAX_FAILED_REPORTED).optional(),
  pieces: z.boolean().optional(),
  direct: z.boolean().optional()
})

const answerSchema = z.discriminatedUnion('status', [
  z.strictObject({ status: z.literal('fetch'), leaseMs: z.number().int().min(1).max(600_000) }),
  z.strictObject({
    status: z.literal('join'),
    peer: peerIdText,
    addrs: z.array(z.string().max(300)).max(16),
    committed: z.boolean(),
    others: z.array(z.strictObject({ peer: peerIdText, addrs: z.array(z.string().max(300)).max(16) })).max(CLAIM_OTHERS_MAX).optional(),
    seeder: z.strictObject({ peer: peerIdText, addrs: z.array(z.string().max(300)).max(16) }).optional()
  }),
  z.strictObject({ status: z.literal('ok') }),
  z.strictObject({ status: z.literal('bad_request'), message: z.string().max(MAX_ANSWER_MESSAGE_CHARS) }),
  z.strictObject({ status: z.literal('redirect'), peer: peerIdText, addrs: z.array(z.string().max(300)).max(16) })
])

export function encodeClaimFrame (value: ClaimRequest | WireClaimAnswer): Uint8Array {
  return encodeJsonFrame(value)
}

export function decodeClaimRequest (bytes: Uint8Array): ClaimRequest {
  return decodeJsonFrame(bytes, requestSchema, 'claim request') as ClaimRequest
}

export function decodeClaimAnswer (bytes: Uint8Array): WireClaimAnswer {
  return decodeJsonFrame(bytes, answerSchema, 'claim answer')
}
