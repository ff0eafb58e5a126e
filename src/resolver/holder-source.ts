import type { AbortOptions } from '@libp2p/interface'
import { setTimeout as delay } from 'node:timers/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { DigestMismatchError, type Digest } from '../oci/digest.js'
import { MANIFEST_TYPES, MAX_MANIFEST_BYTES, declaredMediaType } from '../oci/media-types.js'
import type { StoreReader } from '../store/roles.js'
import type { Stats } from '../metrics/stats.js'
import type { PeerRef } from '../p2p/fetch/client.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { MAX_FAILED_REPORTED } from '../p2p/claim/frames.js'
import { CLAIM_RENEW_MS, CLAIM_TIMEOUT_MS } from '../p2p/claim/constants.js'
import { IN_PROGRESS_IDLE_MS, MAX_PEER_ATTEMPTS } from '../p2p/constants.js'
import { PieceMap } from './pieces/piece-map.js'
import { PieceSources } from './pieces/piece-sources.js'
import { fetchPieces, type PieceTiming } from './pieces/piece-fetch.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'
import { fetchVerified } from './peer-fetch.js'
import { Backoff } from '../clock/backoff.js'
import { ClaimLease } from './claim-lease.js'
import type { DownloadKind, DownloadSink } from './download-sink.js'

/**
 * A peer a claim named that answers `busy` (it serves CACHE_MAX_UPLOADS already) is alive and
 * has the bytes: other holders are tried, else it is asked again after a pause, doubling from
 * the first figure up to the second (with jitter, so a herd's retries spread out). Busy never
 * counts as failed: a takeover would be a second upstream fetch (issue 23).
 */
const BUSY_RETRY_FIRST_MS = 100
const BUSY_RETRY_MAX_MS = 2_000

/** The waits of a download's swarm side, in ms; the defaults are the constants (tests inject small ones). */
export interface SwarmTiming {
  /** A busy named peer is asked again after this, doubling (BUSY_RETRY_FIRST_MS)... */
  busyRetryFirstMs: number
  /** ...up to this pause between two asks (BUSY_RETRY_MAX_MS). */
  busyRetryMaxMs: number
  /** The lease is renewed this often while bytes arrive (CLAIM_RENEW_MS). */
  claimRenewMs: number
  /** One renew, done or release round trip to the coordinator (CLAIM_TIMEOUT_MS). */
  claimTimeoutMs: number
  /** A seeder that answers every first hashes request busy for this long is given up (IN_PROGRESS_IDLE_MS). */
  hashesBusyMs: number
}

/** The timing of production: the protocol constants. */
export const DEFAULT_SWARM_TIMING: SwarmTiming = {
  busyRetryFirstMs: BUSY_RETRY_FIRST_MS,
  busyRetryMaxMs: BUSY_RETRY_MAX_MS,
  claimRenewMs: CLAIM_RENEW_MS,
  claimTimeoutMs: CLAIM_TIMEOUT_MS,
  hashesBusyMs: IN_PROGRESS_IDLE_MS
}

/** The swarm a download asks, and the download it fills. */
export interface HolderSourceInit {
  peers: PeerLookupInit
  digest: Digest
  kind: DownloadKind
  /** Its `maxSize` (CACHE_MAX_SIZE, bytes) bounds what a peer may announce. */
  store: Pick<StoreReader, 'maxSize'>
  stats: Stats
  log: Logger
  /** The download the bytes go to. */
  sink: DownloadSink
  timing: SwarmTiming
  /** Overrides of DEFAULT_PIECE_TIMING (unit tests). */
  pieceTiming?: Partial<PieceTiming> | undefined
}

/**
 * The swarm as the source of one download (issue 12): the key's coordinator answers a claim with
 * "fetch" (this node goes upstream, under a ClaimLease) or "join" (read it from the peer that is
 * fetching or has it: in pieces from every holder when they speak pieces, issue 23, else whole
 * from the named one). When no coordinator answers, the DHT's provider records are tried. A peer
 * that fails mid-way is reported to the coordinator with the next claim, and the rest comes from
 * the next source, resumed from the bytes the file has where it can be. Bytes that turn out wrong
 * start the file over; a peer that sent all of them is deny-listed.
 */
export class HolderSource {
  constructor (private readonly init: HolderSourceInit) {}

  /**
   * Asks the key's coordinator who fetches it, and reads from the peer it names until one
   * delivers or MAX_PEER_ATTEMPTS failed in a row without a byte (each failure is reported with
   * the next claim; a round that brought bytes does not count: on a loaded machine transfers
   * stall and resume, and giving up sends this node upstream without a lease). Returns
   * the lease when this node is to go upstream; undefined when done (the file verified) or when
   * the upstream should be asked without one (no coordinator answered, or every named peer and
   * every other provider the DHT knows failed).
   * @throws the file's errors (the local disk), the signal's reason
   */
  async fromSwarm (options: Required<AbortOptions>): Promise<ClaimLease | undefined> {
    const { signal } = options
    const { peers, stats, log, digest, kind, sink, timing } = this.init
    const self = peers.swarm.peerId.toString()
    const failed: string[] = []
    // Hash sources two holders contradicted (or whose whole copy failed its digest): not asked
    // again by this download, as a seeder or a holder; one that lied would vouch for a wrong
    // prefix again, and a resume over it would cut the client's retry too.
    const distrusted = new Set<string>()
    const untrusted = (peer: string): boolean => peers.swarm.isDenied(peer) || distrusted.has(peer)
    const pauses = new Backoff(timing.busyRetryFirstMs, timing.busyRetryMaxMs)
    for (let round = 0; round <= MAX_PEER_ATTEMPTS && !sink.file.verified; round++) {
      const asked = performance.now()
      const claimed = await peers.swarm.claim(
        {
          op: 'claim',
          key: digest,
          ...(failed.length > 0 ? { failed: failed.slice(-MAX_FAILED_REPORTED) } : {}),
          ...(kind === 'blob' ? { pieces: true } : {})
        },
        { signal }
      )
      const claimMs = Math.round((performance.now() - asked) * 10) / 10
      if (claimed === undefined) {
        // No coordinator reachable: the provider records the DHT has, then the upstream.
        if (!await this.fromProviders({ signal })) {
          log.info({ key: digest }, 'no claim coordinator answered and no provider served it: asking the upstream without a lease')
        }
        return undefined
      }
      const { answer, coordinator } = claimed
      if (answer.status === 'fetch') {
        stats.inc('claims_won')
        log.info({ key: digest, coordinator, claimMs }, 'claim won')
        return new ClaimLease(peers.swarm, digest, coordinator, { renewMs: timing.claimRenewMs, timeoutMs: timing.claimTimeoutMs })
      }
      if (answer.status !== 'join') {
        log.warn({ key: digest, coordinator, answer }, 'claim refused by the coordinator; fetching from the upstream')
        return undefined
      }
      stats.inc('claims_joined')
      log.info({ key: digest, peer: answer.peer, committed: answer.committed, coordinator, claimMs }, 'claim joined')
      if (answer.peer === self || untrusted(answer.peer)) {
        if (!failed.includes(answer.peer)) failed.push(answer.peer)
        continue
      }
      // The holder fetching it lied to this node before: its hashes and its followers' pieces can't be trusted.
      if (answer.seeder !== undefined && untrusted(answer.seeder.peer)) {
        if (!failed.includes(answer.seeder.peer)) failed.push(answer.seeder.peer)
        continue
      }
      if (failed.includes(answer.peer)) {
        // Named again although reported: its lease runs (see ClaimTable), or it is the
        // coordinator itself, which answered: loaded, not dead. Waiting for it costs time; a
        // takeover would cost the upstream a second copy. A lease ends by itself, so waiting
        // for one does not count as a round; a committed copy named again does.
        if (!answer.committed) round--
        const pause = pauses.next()
        log.info(
          { key: digest, peer: answer.peer, waitMs: pause, committed: answer.committed },
          'the holder is alive; asking it again after a pause'
        )
        await delay(pause, undefined, { signal })
      }
      const before = sink.file.written
      try {
        const named = { id: peerIdFromString(answer.peer), multiaddrs: parseAddrs(answer.addrs) }
        const others = (answer.others ?? []).filter(o => o.peer !== self).map(o => ({
          id: peerIdFromString(o.peer),
          multiaddrs: parseAddrs(o.addrs)
        }))
        const seeder = answer.seeder !== undefined && answer.seeder.peer !== self
          ? { id: peerIdFromString(answer.seeder.peer), multiaddrs: parseAddrs(answer.seeder.addrs) }
          : named
        if (!await this.fromPieces(named, others, seeder, { signal })) await this.fromNamedPeer(named, { signal })
        stats.inc('upstream_fetches_saved')
      } catch (err) {
        if (!(err instanceof PeerFetchError) || signal.aborted) throw err
        log.info({ key: digest, peer: err.peer, reason: err.reason, err: err.message }, 'peer fetch failed; asking the coordinator again')
        // A holder whose copy started over did nothing wrong, and will have it again.
        if (err.reason !== 'restarted' && !failed.includes(answer.peer)) failed.push(answer.peer)
        if (err.reason === 'mismatch') {
          distrusted.add(err.peer)
          if (!failed.includes(err.peer)) failed.push(err.peer)
        }
        if (sink.file.written > before) round = -1
      }
    }
    if (!sink.file.verified) {
      // The coordinator may have been misled (a peer that claims what it can't serve), and content
      // only runners hold has no upstream: the DHT's other providers first.
      const exclude = new Set([self, ...failed, ...distrusted])
      if (
        await tryProviders(peers, digest, { signal, exclude }, async (p, attempt) => {
          await this.fromPeer(p, attempt)
          return true
        }) === true
      ) return undefined
      // A second upstream copy the coordinator did not grant: say so (a herd on a loaded machine, issue 23).
      log.info(
        { key: digest, failed },
        `every holder named failed ${
          MAX_PEER_ATTEMPTS + 1
        } times in a row, and no other provider served it: asking the upstream without a lease`
      )
    }
    return undefined
  }

  /**
   * `fromPeer` from the providers the DHT knows, in turn (see tryProviders): true once one
   * delivered, false when none could (the upstream is then the answer).
   * @throws the file's errors (the local disk), the signal's reason
   */
  async fromProviders (options: Required<AbortOptions>): Promise<boolean> {
    const { peers, digest } = this.init
    return await tryProviders(peers, digest, options, async (p, attempt) => {
      await this.fromPeer(p, attempt)
      return true
    }) === true
  }

  /**
   * `fromPeer` from the holder a claim named. While it answers `busy`, any other holder the DHT
   * knows is tried (one that stored it, or the one fetching it), else the named one is asked
   * again after a pause (see BUSY_RETRY_MAX_MS): busy is never a failure. Throws the named
   * holder's other failures (dead, stalled, lying).
   */
  private async fromNamedPeer (peer: PeerRef, options: Required<AbortOptions>): Promise<void> {
    const { signal } = options
    const { peers, digest, stats, log, timing } = this.init
    const named = peer.id.toString()
    const self = peers.swarm.peerId.toString()
    const pauses = new Backoff(timing.busyRetryFirstMs, timing.busyRetryMaxMs)
    for (let busy = 1;; busy++) {
      try {
        await this.fromPeer(peer, { signal })
        return
      } catch (err) {
        if (!(err instanceof PeerFetchError) || err.reason !== 'busy') throw err
      }
      stats.inc('peer_busy_answers')
      const other = await tryProviders(peers, digest, { signal, exclude: new Set([named, self]) }, async (p, attempt) => {
        await this.fromPeer(p, attempt)
        return true
      })
      if (other === true) return
      const pause = pauses.next()
      log.debug({ key: digest, peer: named, busy, waitMs: pause }, 'peer busy and no other holder could serve; asking it again')
      await delay(pause, undefined, { signal })
    }
  }

  /**
   * Fetches the blob in pieces from every holder at once (issue 23): piece hashes from `seeder`
   * (the holder fetching it, or `named` itself), pieces from `named`, the seeder and `others` (see
   * fetchPieces), each verified before it is written, so this node serves them to others as they
   * arrive (`piecewise`). False when the seeder speaks no pieces (an older version) or this is a
   * manifest: the caller reads it whole from `named` instead. When the whole blob does not match
   * its digest, the hash source vouched for every piece: it is deny-listed (if it was the only
   * one) and the file starts over.
   * @throws PeerFetchError of the hash source, or of the last holder, when the pieces can't be had
   */
  private async fromPieces (named: PeerRef, others: PeerRef[], seeder: PeerRef, options: Required<AbortOptions>): Promise<boolean> {
    const { signal } = options
    const { peers, store, stats, digest, kind, log, sink, timing } = this.init
    const file = sink.file
    if (kind !== 'blob') return false
    const name = seeder.id.toString()
    let first
    // Busy (its upstream has not answered yet, it is hashing its stored copy, or it serves
    // CACHE_MAX_UPLOADS): alive, asked again, for `hashesBusyMs` at most (as the hash follower
    // does): then the coordinator is asked again.
    const since = Date.now()
    for (const pauses = new Backoff(timing.busyRetryFirstMs, timing.busyRetryMaxMs);;) {
      try {
        first = await peers.swarm.pieceHashes(seeder, digest, 0, { signal, idleMs: peers.idleMs })
        break
      } catch (err) {
        if (err instanceof PeerFetchError && err.reason === 'refused') return false
        if (!(err instanceof PeerFetchError) || err.reason !== 'busy') throw err
        if (Date.now() - since > timing.hashesBusyMs) {
          throw new PeerFetchError(err.peer, 'stalled', `answered busy to every hashes request for ${timing.hashesBusyMs} ms`)
        }
      }
      stats.inc('peer_busy_answers')
      await delay(pauses.next(), undefined, { signal })
    }
    if (first.size > store.maxSize) {
      throw new PeerFetchError(name, 'too_large', `announced ${first.size} bytes, more than the ${store.maxSize} this node takes`)
    }
    if (file.size !== undefined && file.written > 0 && file.size !== first.size) await file.restart()
    const map = new PieceMap(first.size, undefined, file.written, file.aheadOffsets())
    map.addHashes(first.from, first.hashes)
    const sources = new PieceSources(named, name === named.id.toString() ? others : [seeder, ...others], {
      isDenied: peer => peers.swarm.isDenied(peer)
    }, name)
    const hashSource = sources.all.find(s => s.name === name)
    if (hashSource !== undefined) sources.served(hashSource, first.have)
    if (first.have < first.size) stats.inc('peer_inflight_joins')
    file.contributors.add(name)
    sink.sourced({ size: first.size, cache: 'PEER', origin: named.id.toString(), piecewise: true })
    log.debug({
      key: digest,
      peer: named.id.toString(),
      seeder: name,
      size: first.size,
      pieces: map.count,
      others: others.length,
      epoch: first.epoch
    }, 'fetching pieces')
    let outcome
    try {
      outcome = await fetchPieces({
        network: peers.swarm,
        digest,
        map,
        sources,
        hashSource: seeder,
        hashEpoch: first.epoch,
        write: async (start, chunks, hash) => {
          await file.writePiece(start, chunks, hash)
        },
        signal,
        idleMs: peers.idleMs,
        stats,
        log,
        timing: this.init.pieceTiming
      })
    } catch (err) {
      // Pieces checked against hashes that turned out wrong, or of a copy that is gone, are suspect.
      if (err instanceof PeerFetchError && (err.reason === 'restarted' || err.reason === 'mismatch')) await file.restart()
      throw err
    }
    try {
      file.verify(`peer ${name} (piece hashes)`)
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err
      stats.inc('errors')
      // Every piece matched the hash source's hashes: its hashes (and bytes) were wrong.
      if (file.contributors.size === 1) {
        peers.swarm.deny(name, err.message)
        stats.inc('peers_denied')
      }
      await file.restart()
      throw new PeerFetchError(name, 'mismatch', err.message)
    }
    // The hash source was right: whoever sent pieces that did not match its hashes was wrong.
    for (const peer of outcome.suspects) {
      peers.swarm.deny(peer, `sent a piece of ${digest} that did not match its piece hash`)
      stats.inc('peers_denied')
    }
    file.complete()
    return true
  }

  /**
   * Fetches what is still missing from one peer, streaming it into the file; verified at the end.
   * @throws PeerFetchError (the file started over when the bytes did not verify), the file's errors
   */
  private async fromPeer (peer: PeerRef, options: Required<AbortOptions>): Promise<void> {
    const { signal } = options
    const { peers, store, stats, digest, kind, sink } = this.init
    const file = sink.file
    // Appended from `written` on: pieces written ahead are overwritten, not adopted.
    file.dropAhead()
    let stated: string | undefined
    try {
      await fetchVerified(peers, peer, {
        request: { key: digest, start: file.written },
        signal,
        maxSize: kind === 'manifest' ? MAX_MANIFEST_BYTES : store.maxSize,
        contributors: file.contributors,
        open: blob => {
          stated = blob.mediaType
          if (blob.inProgress) stats.inc('peer_inflight_joins')
          sink.sourced({ size: blob.size, cache: 'PEER', origin: blob.peer })
          return {
            write: async chunks => {
              await file.append(chunks, true)
            },
            verify: source => {
              file.verify(source)
            }
          }
        }
      })
    } catch (err) {
      // Bytes that did not verify are of no use to anyone: start the file over.
      if (err instanceof PeerFetchError && err.reason === 'mismatch') await file.restart()
      throw err
    }
    if (kind === 'manifest') sink.setMediaType(await this.vouchedMediaType(peer.id.toString(), stated))
    file.complete()
  }

  /**
   * A peer's digest covers a manifest's body, not the type it states: that is taken only if it
   * is a manifest type and agrees with the type the body declares (when it declares one).
   * @throws PeerFetchError `refused` (the file started over) when there is no such type
   */
  private async vouchedMediaType (peer: string, stated: string | undefined): Promise<string> {
    const { sink, digest } = this.init
    const declared = declaredMediaType(await sink.file.readWritten())
    const known = stated !== undefined && MANIFEST_TYPES.includes(stated) ? stated : undefined
    const mediaType = declared ?? known
    if (mediaType === undefined || (known !== undefined && known !== mediaType)) {
      await sink.file.restart()
      throw new PeerFetchError(
        peer,
        'refused',
        `has ${digest} without a manifest media type it can vouch for (header ${stated ?? 'none'}, body ${declared ?? 'none'})`
      )
    }
    return mediaType
  }
}

/** A coordinator's addresses for a peer; one that does not parse is skipped (dialled by ID). */
function parseAddrs (addrs: string[]): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of addrs) {
    try {
      out.push(multiaddr(a))
    } catch {}
  }
  return out
}
