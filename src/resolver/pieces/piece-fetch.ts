import type { Logger } from 'pino'
import type { Digest } from '../../oci/digest.js'
import type { Stats } from '../../metrics/stats.js'
import type { PeerRef } from '../../p2p/fetch/client.js'
import { PeerFetchError } from '../../p2p/fetch/errors.js'
import { pieceHash } from '../../p2p/pieces/piece-hasher.js'
import type { PeerNetwork } from '../peer-network.js'
import type { PieceMap } from './piece-map.js'
import type { PieceSource, PieceSources } from './piece-sources.js'
import { setTimeout as delay } from 'node:timers/promises'
import { Backoff } from '../../clock/backoff.js'
import { IN_PROGRESS_IDLE_MS } from '../../p2p/constants.js'
import {
  HASHES_BATCH_MS,
  HASHES_IDLE_MS,
  HOLDER_BUSY_FIRST_MS,
  HOLDER_BUSY_MAX_MS,
  PIECE_LANES,
  PROBE_INTERVAL_MS,
  RUN_PIECES
} from './constants.js'

/** The waits and widths of one piece transfer; defaults from constants.ts (tests shrink them). */
export interface PieceTiming {
  lanes: number
  runPieces: number
  hashesIdleMs: number
  /** The pause between hashes requests while no piece waits for one (HASHES_BATCH_MS). */
  hashesBatchMs: number
}

export const DEFAULT_PIECE_TIMING: PieceTiming = {
  lanes: PIECE_LANES,
  runPieces: RUN_PIECES,
  hashesIdleMs: HASHES_IDLE_MS,
  hashesBatchMs: HASHES_BATCH_MS
}

export interface PieceFetchInit {
  network: PeerNetwork
  digest: Digest
  map: PieceMap
  sources: PieceSources
  /** The one holder whose piece hashes this receiver checks pieces against (the seeder, else the named holder). */
  hashSource: PeerRef
  /** The hash source's copy the hashes in `map` came from (its first answer's epoch; undefined: stored). */
  hashEpoch?: string | undefined
  /** Writes a verified piece starting at byte `start`, with its hash (see BlobDownload.writePiece). */
  write: (start: number, chunks: Buffer[], hash: string) => Promise<void>
  signal: AbortSignal
  /** A peer's silence tolerated before its transfer is `stalled` (CACHE_PEER_FIRST_BYTE_TIMEOUT). */
  idleMs: number
  stats: Stats
  log: Logger
  timing?: Partial<PieceTiming> | undefined
}

/** How a piece transfer went, for the caller's final digest check. */
export interface PieceOutcome {
  /**
   * Holders that sent a piece that did not match its hash. Deny-listed by the caller once the
   * whole blob verified (the hash source was right, so they were wrong); when it does not, the
   * hash source was wrong and they are not blamed.
   */
  suspects: Set<string>
}

/**
 * Fetches every missing piece of a blob from its holders at once (issue 23), each checked against
 * its piece hash before it is written, so a node passes on only verified pieces.
 *
 * Hashes come from `hashSource` alone, followed as it gets them (it may be receiving the blob
 * itself); the final digest check of the whole blob then holds that one peer to account. Pieces
 * come in runs of up to `runPieces` from the holders `sources` picks, `lanes` runs at once, lowest
 * missing pieces first (clients read in order). A piece that does not match its hash is asked of
 * another holder, and the one that sent it is a suspect (see PieceOutcome); two holders sending
 * the same piece against the hash source's hash make the hash source the suspect (PeerFetchError
 * `mismatch` of the hash source), and the hash source contradicting its own hashes is
 * deny-listed at once. When the hash source's copy starts over (a new epoch), the hashes are of no
 * use: PeerFetchError `restarted`. A busy holder cools off, a failed one is dropped.
 * Resolves once every piece is written.
 * @throws PeerFetchError when the hash source fails or restarted, or no holder is left; the
 * writer's errors (the local disk) as they are
 */
export async function fetchPieces (init: PieceFetchInit): Promise<PieceOutcome> {
  const timing = { ...DEFAULT_PIECE_TIMING, ...init.timing }
  const { map, sources, network, digest, log, stats } = init
  const stop = new AbortController()
  const signal = AbortSignal.any([init.signal, stop.signal])
  const hashSourceName = init.hashSource.id.toString()
  /** Peers whose copy of a piece mismatched its hash, by piece. */
  const mismatched = new Map<number, Set<string>>()
  const suspects = new Set<string>()
  /**
   * The hash source's answer comes from another copy than its first: a new epoch. A stored copy
   * (no epoch) is the one in progress, committed: its bytes verified, so are its hashes.
   */
  const otherCopy = (epoch: string | undefined): boolean => epoch !== undefined && epoch !== init.hashEpoch
  const restarted = (peer: string, epoch: string | undefined): PeerFetchError =>
    new PeerFetchError(
      peer,
      'restarted',
      `its copy of ${digest} started over (epoch ${epoch ?? 'stored'}, hashes from ${
        init.hashEpoch ?? 'stored'
      }); the pieces checked against its hashes are fetched again`
    )
  const lanes = new Set<Promise<void>>()
  let probing: Promise<void> | undefined
  let fatal: Error | undefined
  let kick: () => void = () => {}
  const woken = (): void => {
    kick()
  }

  const followHashes = async (): Promise<void> => {
    const source = sources.all.find(s => s.name === hashSourceName)
    let pauses = new Backoff(HOLDER_BUSY_FIRST_MS, HOLDER_BUSY_MAX_MS)
    let progressAt = Date.now()
    while (map.hashesKnown < map.count) {
      let answer
      try {
        answer = await network.pieceHashes(init.hashSource, digest, map.hashesKnown, {
          signal,
          idleMs: Math.max(init.idleMs, timing.hashesIdleMs)
        })
      } catch (err) {
        // Busy (serving CACHE_MAX_UPLOADS, or its copy waits for a source again): alive, asked
        // again, as long as it gets somewhere.
        if (!(err instanceof PeerFetchError) || err.reason !== 'busy') throw err
        if (Date.now() - progressAt > IN_PROGRESS_IDLE_MS) {
          throw new PeerFetchError(err.peer, 'stalled', `answered busy with no new piece hash for ${IN_PROGRESS_IDLE_MS} ms`)
        }
        stats.inc('peer_busy_answers')
        await delay(pauses.next(), undefined, { signal })
        continue
      }
      if (answer.hashes.length > 0) {
        progressAt = Date.now()
        pauses = new Backoff(HOLDER_BUSY_FIRST_MS, HOLDER_BUSY_MAX_MS)
      }
      if (answer.size !== map.size) {
        throw new PeerFetchError(answer.peer, 'protocol', `states ${answer.size} bytes for ${digest}, not the ${map.size} it stated before`)
      }
      if (otherCopy(answer.epoch)) throw restarted(answer.peer, answer.epoch)
      try {
        map.addHashes(answer.from, answer.hashes)
      } catch (err) {
        throw new PeerFetchError(answer.peer, 'protocol', (err as Error).message)
      }
      if (source !== undefined) sources.served(source, answer.have)
      woken()
      if (map.hashesKnown < map.count) await map.hashWanted(timing.hashesBatchMs, { signal })
    }
  }
  const hashes = followHashes().catch((err: Error) => {
    map.failHashes(err)
    if (!signal.aborted) fatal ??= err
    woken()
  })

  const runLane = async (source: PieceSource, first: number, last: number): Promise<void> => {
    source.lanes++
    let next = first
    try {
      const blob = await network.fetch(
        source.ref,
        { key: digest, start: map.start(first), end: map.end(last - 1), pieces: true },
        { signal, idleMs: init.idleMs }
      )
      try {
        if (blob.size !== map.size) {
          throw new PeerFetchError(blob.peer, 'protocol', `states ${blob.size} bytes for ${digest}, not ${map.size}`)
        }
        if (source.name === hashSourceName && otherCopy(blob.epoch)) throw restarted(blob.peer, blob.epoch)
        let piece: Buffer[] = []
        let bytes = 0
        for await (const batch of blob.body) {
          for (let chunk of batch) {
            while (chunk.byteLength > 0) {
              const take = chunk.subarray(0, map.length(next) - bytes)
              chunk = chunk.subarray(take.byteLength)
              piece.push(take)
              bytes += take.byteLength
              if (bytes < map.length(next)) continue
              const expected = await map.hash(next, { signal })
              if (pieceHash(piece) !== expected) throw mismatch(source, next)
              await init.write(map.start(next), piece, expected)
              map.complete(next)
              stats.inc('pieces_from_peers')
              stats.peerPieces.add(source.name, 'received', 1, bytes)
              stats.inc('bytes_from_peers', bytes)
              stats.peerTraffic.add(source.name, 'received', bytes)
              if (blob.dataChannel) stats.inc('bytes_from_peers_data_channel', bytes)
              if (blob.relayed === true) stats.inc('bytes_from_partial_holders', bytes)
              sources.served(source, map.end(next))
              next++
              piece = []
              bytes = 0
            }
          }
        }
        blob.close()
      } catch (err) {
        blob.close(err as Error)
        throw err
      }
    } catch (err) {
      if (signal.aborted) return
      if (!(err instanceof PeerFetchError) || err.reason === 'restarted') {
        fatal ??= err as Error
        return
      }
      if (err.reason === 'busy') {
        // Alive and holding the bytes (or getting them): never a failure (issue 23).
        stats.inc('peer_busy_answers')
        log.debug(
          { key: digest, peer: source.name, have: err.have, piece: next },
          'holder busy; its pieces are asked of another holder, or of it again after a pause'
        )
        sources.busy(source, err.have)
      } else {
        log.info(
          { key: digest, peer: source.name, reason: err.reason, err: err.message, piece: next },
          'piece transfer failed; asking another holder'
        )
        if (err.reason === 'stalled' || err.reason === 'truncated') sources.faltered(source)
        else sources.failed(source)
        if (err.reason === 'mismatch' && (mismatched.get(next)?.size ?? 0) >= 2) {
          fatal ??= new PeerFetchError(
            hashSourceName,
            'mismatch',
            `piece ${next} of ${digest} from two holders disagrees with its piece hash`
          )
        }
      }
    } finally {
      source.lanes--
      map.unassign(next, last)
    }
  }

  const mismatch = (source: PieceSource, piece: number): PeerFetchError => {
    const message = `piece ${piece} of ${digest} did not match its piece hash`
    stats.inc('pieces_refetched')
    stats.inc('errors')
    if (source.name === hashSourceName) {
      // It contradicts its own hashes within one copy: a liar, whatever the final digest says.
      network.deny(source.name, message)
      stats.inc('peers_denied')
      fatal ??= new PeerFetchError(source.name, 'mismatch', `${message} that it sent itself`)
    } else {
      const peers = mismatched.get(piece) ?? new Set<string>()
      peers.add(source.name)
      mismatched.set(piece, peers)
      suspects.add(source.name)
    }
    return new PeerFetchError(source.name, 'mismatch', message)
  }

  /** Asks a holder how far it is, for the missing piece `wanted`. */
  const probe = async (source: PieceSource, wanted: number): Promise<void> => {
    const offset = map.start(wanted)
    try {
      // A header-only request: the holder says how far it is (`have`), or is busy.
      const blob = await network.fetch(
        source.ref,
        { key: digest, start: offset, end: offset, pieces: true },
        { signal, idleMs: init.idleMs }
      )
      blob.close()
      // What it said it holds; a stored copy that says nothing holds all of it.
      const have = blob.have ?? (blob.inProgress ? undefined : blob.size)
      if (have !== undefined) sources.served(source, have)
    } catch (err) {
      if (err instanceof PeerFetchError && err.reason === 'busy') sources.busy(source, err.have)
      else if (!signal.aborted) sources.failed(source)
    }
    sources.probed(source, (source.have ?? 0) >= map.end(wanted))
  }

  // An abort wakes the loop at once, whatever it waits for.
  init.signal.addEventListener('abort', woken, { once: true })
  try {
    while (!map.done) {
      if (fatal !== undefined) throw fatal
      init.signal.throwIfAborted()
      for (let i = map.nextMissing(); lanes.size < timing.lanes && i >= 0; i = map.nextMissing(i)) {
        const choice = sources.pick(map.start(i), map.pieceSize, map.size)
        if (choice === undefined) break
        const last = map.assign(i, Math.min(timing.runPieces, choice.maxPieces))
        // Woken once the lane is out of `lanes`, so the loop sees it gone.
        const lane: Promise<void> = runLane(choice.source, i, last).finally(() => {
          lanes.delete(lane)
          woken()
        })
        lanes.add(lane)
      }
      const wanted = map.nextMissing()
      if (probing === undefined && lanes.size < timing.lanes && wanted >= 0) {
        const due = sources.probeCandidate(map.size)
        if (due !== undefined) {
          probing = probe(due, wanted).finally(() => {
            probing = undefined
            woken()
          })
        }
      }
      if (lanes.size === 0 && probing === undefined && !map.done) {
        if (!sources.usable) {
          throw new PeerFetchError(
            hashSourceName,
            'not_found',
            `no holder left to serve the remaining ${map.count - map.doneCount} pieces of ${digest}`
          )
        }
      }
      // Until something changes, a holder cools down, or (a backstop) the next probe is due.
      const ready = Math.min(sources.nextReady() ?? Infinity, Date.now() + PROBE_INTERVAL_MS)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.max(1, ready - Date.now()))
        kick = () => {
          clearTimeout(timer)
          resolve()
        }
        if (fatal !== undefined || map.done) kick()
      })
    }
  } finally {
    init.signal.removeEventListener('abort', woken)
    stop.abort()
    await Promise.allSettled([...lanes, hashes, probing])
  }
  return { suspects }
}
