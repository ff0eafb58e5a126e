import { DigestMismatchError, DigestVerifier, type Digest } from '../oci/digest.js'
import type { PeerBlob, PeerRef } from '../p2p/fetch/client.js'
import type { FetchRequest } from '../p2p/fetch/frames.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import type { PeerLookupInit } from './peer-lookup.js'

/** Where verified peer bytes go: a blob's temporary file, or memory for small records. */
export interface DigestSink {
  /** Appends a batch of chunks, hashing them. */
  write: (chunks: Buffer[]) => Promise<void>
  /** Throws DigestMismatchError unless everything written hashes to the expected digest. */
  verify: (source: string) => void
}

export interface VerifiedFetchOptions {
  request: FetchRequest
  signal: AbortSignal
  /** Largest whole size accepted (bytes): CACHE_MAX_SIZE, the manifest or API body bound. */
  maxSize: number
  /**
   * Called with the peer's header before any byte is read: returns the sink for the bytes (its
   * digest from the key, or from the header for API records). May throw a PeerFetchError
   * (`refused`) to turn the answer down.
   */
  open: (blob: PeerBlob) => DigestSink
  /**
   * Peers whose bytes are already in the sink (a resumed transfer); this one is added. Which of
   * several lied is unknowable from one digest: only a peer that sent every byte is deny-listed.
   */
  contributors?: Set<string>
}

/**
 * The one verified transfer from a peer (docs/design.md §3.4): fetch over `/p2p-cache/fetch/1.0.0`, bound
 * the size, write each batch to the sink as it arrives, verify the digest at the end. A
 * mismatch throws PeerFetchError `mismatch`, and deny-lists the peer when all the bytes were
 * its own (a resumed transfer mixes sources, and an honest peer is not denied for another's
 * bytes: the caller starts over and the next transfer decides); any other failure of
 * the peer (dial, stall, truncation) is a PeerFetchError too, so the caller moves on to the next
 * source. Errors of the sink itself (the local disk) propagate as they are.
 * Returns the peer's header (size, media type, record).
 */
export async function fetchVerified (peers: PeerLookupInit, peer: PeerRef, opts: VerifiedFetchOptions): Promise<PeerBlob> {
  const { swarm, stats } = peers
  const blob = await swarm.fetch(peer, opts.request, { signal: opts.signal, idleMs: peers.idleMs })
  let sink: DigestSink
  try {
    if (blob.size > opts.maxSize) {
      throw new PeerFetchError(blob.peer, 'too_large', `announced ${blob.size} bytes, more than the ${opts.maxSize} this node takes`)
    }
    sink = opts.open(blob)
  } catch (err) {
    blob.close(err as Error)
    throw err
  }
  const contributors = opts.contributors ?? new Set<string>()
  const sole = [...contributors].every(p => p === blob.peer)
  contributors.add(blob.peer)
  try {
    for await (const batch of blob.body) {
      await sink.write(batch)
      let bytes = 0
      for (const b of batch) bytes += b.byteLength
      stats.inc('bytes_from_peers', bytes)
      stats.peerTraffic.add(blob.peer, 'received', bytes)
      if (blob.dataChannel) stats.inc('bytes_from_peers_data_channel', bytes)
    }
  } catch (err) {
    blob.close(err as Error)
    throw err
  }
  blob.close()
  try {
    sink.verify(`peer ${blob.peer}`)
  } catch (err) {
    if (!(err instanceof DigestMismatchError)) throw err
    stats.inc('errors')
    if (sole) {
      swarm.deny(blob.peer, err.message)
      stats.inc('peers_denied')
    } else {
      peers.log.warn(
        { key: opts.request.key, peers: [...contributors], err: err.message },
        'a transfer resumed from several peers did not verify; starting over'
      )
    }
    throw new PeerFetchError(blob.peer, 'mismatch', err.message)
  }
  return blob
}

/** A sink for small bodies (manifests, API responses): kept in memory and hashed. */
export class MemorySink implements DigestSink {
  private readonly chunks: Buffer[] = []
  private readonly verifier: DigestVerifier

  constructor (expected: Digest) {
    this.verifier = new DigestVerifier(expected)
  }

  async write (chunks: Buffer[]): Promise<void> {
    for (const c of chunks) {
      this.verifier.update(c)
      this.chunks.push(c)
    }
  }

  verify (source: string): void {
    this.verifier.verify(source)
  }

  get body (): Buffer {
    return Buffer.concat(this.chunks)
  }
}
