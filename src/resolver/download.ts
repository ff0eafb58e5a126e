import { open, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { DigestMismatchError, type Digest } from '../oci/digest.js'
import type { BlobStore } from '../store/blob-store.js'
import type { BlobRecord } from '../store/record.js'
import type { BlobWriter } from '../store/writer.js'
import { discard, type RegistryClient } from '../upstream/registry-client.js'
import { UpstreamUnavailableError } from '../upstream/errors.js'
import { parseContentRange } from '../upstream/content-range.js'
import type { Stats } from '../metrics/stats.js'
import type { PeerRef } from '../p2p/fetch/client.js'
import { PeerFetchError } from '../p2p/fetch/errors.js'
import { tryProviders, type PeerLookupInit } from './peer-lookup.js'

const READ_CHUNK = 256 * 1024
const WRITE_BATCH = 1024 * 1024

export interface BlobDownloadInit {
  digest: Digest
  repo: string
  client: RegistryClient
  store: BlobStore
  stats: Stats
  log: Logger
  /** Ask the swarm first; undefined = upstream only (CACHE_ENABLE_P2P=false). */
  peers?: PeerLookupInit | undefined
}

/**
 * One fetch of a blob into the store: from providers on the DHT, else (or to finish what a
 * peer left) from the upstream. Any number of clients read it while it arrives (from the
 * temporary file, each at its own pace), so concurrent pulls of a digest cost one copy.
 *
 * Readers never get bytes that could turn out wrong: upstream bytes stream through with the
 * last byte held back until the digest verifies; bytes from a peer are released only once the
 * whole blob verified, so a lying peer costs a retry from another source, not a client's pull.
 */
export class BlobDownload {
  /** Resolves with the size once a source is committed to (upstream 2xx, or a verified peer copy). */
  readonly ready: Promise<{ size: number | undefined }>
  readonly done: Promise<BlobRecord>
  readonly digest: Digest
  size: number | undefined
  written = 0
  /** The digest matched: readers may have the last byte (the file may not be durable yet). */
  verified = false
  /** Where the verified bytes came from: a peer (origin = its id) or the upstream. */
  cache: 'PEER' | 'MISS' = 'MISS'
  origin: string
  error: Error | undefined
  /** Bytes in the temporary file that came from peers; while > 0 readers wait for verification. */
  private peerBytes = 0
  private readonly contributors = new Set<string>()
  private writer: BlobWriter | undefined
  private readFile: FileHandle | undefined
  private refs = 1
  private waiters: Array<() => void> = []
  private readonly controller = new AbortController()

  constructor (private readonly init: BlobDownloadInit) {
    this.digest = init.digest
    this.origin = init.client.name
    let readyResolve!: (v: { size: number | undefined }) => void
    let readyReject!: (e: Error) => void
    this.ready = new Promise((resolve, reject) => { readyResolve = resolve; readyReject = reject })
    this.ready.catch(() => {})
    this.done = this.run(readyResolve).catch((err: Error) => {
      this.error = err
      readyReject(err)
      throw err
    }).finally(() => {
      this.notify()
      this.release()
    })
    this.done.catch(() => {})
  }

  /**
   * Takes a hold on the temporary file for one response; false once the download is over and
   * the file closed (the blob is then in the store, or failed). Pair with `release`.
   */
  retain (): boolean {
    if (this.refs === 0) return false
    this.refs++
    return true
  }

  release (): void {
    if (--this.refs === 0) void this.readFile?.close().catch(() => {})
  }

  /** Stops talking to peers (shutdown); the upstream part finishes or fails on its own. */
  cancel (): void {
    this.controller.abort(new Error('shutting down'))
  }

  /** A stream of bytes [start, end) of the blob as they arrive; the caller holds a `retain`. */
  reader (start: number, end: number | undefined): Readable {
    let pos = start
    let pumping = false
    const pump = async (stream: Readable): Promise<void> => {
      if (pumping) return
      pumping = true
      try {
        for (;;) {
          const stop = end ?? this.size
          if (this.error !== undefined) { stream.destroy(this.error); return }
          if (stop !== undefined && pos >= stop) {
            if (this.verified) { stream.push(null); return }
          } else if (this.verified && pos >= this.written) {
            stream.push(null)
            return
          }
          // Hold back the final byte of the requested span until the digest is verified, and
          // everything while the file holds bytes from a peer.
          const available = Math.min(this.written, stop ?? Infinity)
          const limit = this.verified ? available : this.peerBytes > 0 ? 0 : available - 1
          if (this.verified && this.readFile === undefined) throw new Error(`download of ${this.digest} lost its temporary file`)
          if (pos < limit && this.readFile !== undefined) {
            const n = Math.min(limit - pos, READ_CHUNK)
            const buf = Buffer.allocUnsafe(n)
            const { bytesRead } = await this.readFile.read(buf, 0, n, pos)
            pos += bytesRead
            if (stream.destroyed) return
            if (!stream.push(bytesRead === n ? buf : buf.subarray(0, bytesRead))) return
          } else {
            await new Promise<void>(resolve => this.waiters.push(resolve))
          }
        }
      } catch (err) {
        stream.destroy(err as Error)
      } finally {
        pumping = false
      }
    }
    return new Readable({
      highWaterMark: READ_CHUNK,
      read () { void pump(this) }
    })
  }

  private async run (readyResolve: (v: { size: number | undefined }) => void): Promise<BlobRecord> {
    const { store, stats, log, peers, digest } = this.init
    try {
      await this.restart()
      if (peers !== undefined) {
        const peer = await tryProviders(peers, digest, { signal: this.controller.signal }, async (p, signal) => await this.fromPeer(peers, p, signal))
        if (peer !== undefined) {
          this.cache = 'PEER'
          this.origin = peer
          readyResolve({ size: this.size })
        }
      }
      if (!this.verified) await this.fromUpstream(readyResolve)
      const record = await store.commit(this.file(), this.cache === 'PEER' ? `peer ${this.origin}` : `upstream ${this.origin}`)
      stats.inc(this.cache === 'PEER' ? 'peer_hits' : 'upstream_hits')
      log.info({ digest, size: record.size, cache: this.cache, source: this.origin }, 'blob stored')
      return record
    } catch (err) {
      await this.writer?.abort().catch(() => {})
      throw err
    }
  }

  /** Fetches what is still missing from one provider; returns its id once the blob verified. */
  private async fromPeer (peers: PeerLookupInit, peer: PeerRef, signal: AbortSignal): Promise<string> {
    const { store, stats, digest } = this.init
    const blob = await peers.swarm.fetch(peer, { key: digest, start: this.written }, { signal, idleMs: peers.idleMs })
    if (blob.size > store.maxSize) {
      // Not a lie (its CACHE_MAX_SIZE may be larger); this node just can't keep it.
      const err = new PeerFetchError(blob.peer, 'too_large', `announced ${blob.size} bytes, more than this node's CACHE_MAX_SIZE`)
      blob.close(err)
      throw err
    }
    this.contributors.add(blob.peer)
    try {
      for await (const batch of blob.body) await this.append(batch, true)
    } catch (err) {
      blob.close(err as Error)
      throw err
    }
    blob.close()
    this.size = blob.size
    try {
      this.file().verify(`peer ${blob.peer}`)
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err
      // Which of the peers that contributed lied is unknowable from one digest: all are denied.
      for (const p of this.contributors) peers.swarm.deny(p, err.message)
      stats.inc('errors')
      await this.restart()
      throw new PeerFetchError(blob.peer, 'mismatch', err.message)
    }
    this.verified = true
    this.notify()
    return blob.peer
  }

  /** The upstream, resuming with a Range after what peers delivered when it can. */
  private async fromUpstream (readyResolve: (v: { size: number | undefined }) => void): Promise<void> {
    const { client, repo, stats, digest } = this.init
    for (let attempt = 0; ; attempt++) {
      const resumeAt = this.written
      const res = await client.sendOk('GET', repo, `/v2/${repo}/blobs/${digest}`, resumeAt > 0 ? { range: `bytes=${resumeAt}-` } : {})
      try {
        const length = res.headers['content-length']
        let size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined
        if (resumeAt > 0) {
          const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : undefined
          if (range?.start === resumeAt) {
            size = range.total
          } else if (res.status === 200) {
            await this.restart()
          } else {
            throw new UpstreamUnavailableError(client.name, `answered ${res.status} with Content-Range ${res.headers['content-range'] ?? '(none)'} to a request from byte ${resumeAt}`)
          }
        }
        this.size = size
        this.cache = 'MISS'
        this.origin = client.name
        readyResolve({ size })
        // Chunks already buffered are written together (up to WRITE_BATCH): one awaited write
        // per ~64 KiB chunk leaves the thread pool, not the network, as the bottleneck. A chunk
        // that arrives alone is written at once so readers see it without delay.
        let batch: Buffer[] = []
        let batchBytes = 0
        for await (const chunk of res.body) {
          const buf = chunk as Buffer
          batch.push(buf)
          batchBytes += buf.byteLength
          stats.inc('bytes_from_upstream', buf.byteLength)
          if (batchBytes < WRITE_BATCH && res.body.readableLength > 0) continue
          await this.append(batch, false)
          batch = []
          batchBytes = 0
        }
        if (this.size !== undefined && this.written !== this.size) {
          throw new UpstreamUnavailableError(client.name, `blob ${digest} truncated at ${this.written} of ${this.size} bytes`)
        }
      } catch (err) {
        discard(res.body)
        throw err
      }
      try {
        this.file().verify(`upstream ${client.name}`)
      } catch (err) {
        // Peer bytes before the resumed part may be what is wrong: once, fetch it all again.
        if (!(err instanceof DigestMismatchError) || this.peerBytes === 0 || attempt > 0) throw err
        for (const p of this.contributors) this.init.peers?.swarm.deny(p, err.message)
        await this.restart()
        continue
      }
      this.verified = true
      this.notify()
      return
    }
  }

  private async append (chunks: Buffer[], fromPeer: boolean): Promise<void> {
    await this.file().write(chunks)
    let bytes = 0
    for (const c of chunks) bytes += c.byteLength
    this.written += bytes
    if (fromPeer) {
      this.peerBytes += bytes
      this.init.stats.inc('bytes_from_peers', bytes)
    }
    this.notify()
  }

  /** A fresh temporary file: at start, or after bytes that can't be kept. Readers have had none of them. */
  private async restart (): Promise<void> {
    await this.writer?.abort()
    await this.readFile?.close().catch(() => {})
    this.writer = undefined
    this.readFile = undefined
    this.written = 0
    this.peerBytes = 0
    this.contributors.clear()
    const writer = await this.init.store.createWriter(this.init.digest)
    try {
      this.readFile = await open(writer.tmpPath, 'r')
    } catch (err) {
      await writer.abort()
      throw err
    }
    this.writer = writer
  }

  private file (): BlobWriter {
    if (this.writer === undefined) throw new Error(`no temporary file for ${this.init.digest}`)
    return this.writer
  }

  private notify (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}
