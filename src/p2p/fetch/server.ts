import type { Readable } from 'node:stream'
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { BlobStore } from '../../store/blob-store.js'
import type { Stats } from '../../metrics/stats.js'
import type { P2pNode } from '../node.js'
import { FETCH_PROTOCOL, IN_PROGRESS_READY_WAIT_MS, MAX_REQUEST_BYTES } from '../constants.js'
import { decodeRequest, encodeFrame, type ApiAnswer, type FetchResponseHeader, type TagAnswer } from './frames.js'
import { isDigest, type Digest } from '../../oci/digest.js'
import { isTagKey, type TagKey } from '../../oci/tag-key.js'
import type { ApiKey } from '../../keys/api-key.js'

export interface FetchServerInit {
  /** Blobs served to peers at once; more get `busy` and ask another provider. */
  maxUploads: number
  /** A peer that sends no request, or stops reading, for this long is cut off. */
  idleTimeoutMs?: number
}

/** A blob this node is fetching right now; its bytes are readable as they arrive. */
export interface GrowingBlob {
  /** Whole size, once the source stated it. */
  size: number | undefined
  mediaType?: string
  /** Bytes [start, end) as they arrive, the last byte held back until the digest verified. */
  stream: (start: number, end: number | undefined) => Readable
  release: () => Promise<void>
}

export interface FetchServerComponents {
  node: P2pNode
  store: BlobStore
  stats: Stats
  /** This node's last resolution of a tag, for peers whose upstream is down. */
  tags: (key: TagKey) => Promise<TagAnswer | undefined>
  /** A stored API response, for peers that will revalidate it with their own credentials. */
  apiRecords: (key: ApiKey) => Promise<ApiAnswer | undefined>
  /**
   * This node's own download of `digest` in progress, if any (never one started for the peer:
   * SPEC 3.4), once its size is known; `pending` when it has no source yet as `signal` aborts;
   * undefined when there is none.
   */
  inProgress: (digest: Digest, signal: AbortSignal) => Promise<GrowingBlob | 'pending' | undefined>
  log: Logger
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000
/** Streams one connection may have open on this protocol. */
const MAX_INBOUND_STREAMS = 64

/**
 * Answers `/p2p-cache/fetch/1.0.0` from the local store, or from a download this node is doing
 * for its own clients (following the file as it grows). A request from a peer never starts a
 * fetch: it is not forwarded to the upstream or to other peers (SPEC 3.4), so a swarm can't
 * loop or amplify.
 */
export class FetchServer {
  private uploads = 0
  private readonly idleTimeoutMs: number

  constructor (private readonly components: FetchServerComponents, private readonly init: FetchServerInit) {
    this.idleTimeoutMs = init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
  }

  get activeUploads (): number {
    return this.uploads
  }

  async start (): Promise<void> {
    await this.components.node.handle(FETCH_PROTOCOL, (stream, connection) => {
      void this.serve(stream, connection)
    }, { maxInboundStreams: MAX_INBOUND_STREAMS })
  }

  async stop (): Promise<void> {
    await this.components.node.unhandle(FETCH_PROTOCOL)
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const { store, stats } = this.components
    const log = this.components.log.child({ peer: connection.remotePeer.toString() })
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const reply = async (header: FetchResponseHeader): Promise<void> => {
      await lp.write(encodeFrame(header), { signal: AbortSignal.timeout(this.idleTimeoutMs) })
      await stream.close({ signal: AbortSignal.timeout(this.idleTimeoutMs) })
    }
    let request
    try {
      request = decodeRequest((await lp.read({ signal: AbortSignal.timeout(this.idleTimeoutMs) })).subarray())
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'bad fetch request from peer')
      await reply({ status: 'bad_request', message: (err as Error).message }).catch(e => { stream.abort(e as Error) })
      return
    }
    const { key } = request
    if (isTagKey(key)) {
      const tag = await this.components.tags(key).catch(() => undefined)
      await reply(tag === undefined ? { status: 'not_found' } : { status: 'ok', size: 0, start: 0, length: 0, tag }).catch(e => { stream.abort(e as Error) })
      return
    }
    // An API response: its record in the header, then its body as the bytes (the whole body).
    let api: ApiAnswer | undefined
    if (!isDigest(key)) {
      api = await this.components.apiRecords(key).catch(() => undefined)
      if (api === undefined) {
        await reply({ status: 'not_found' }).catch(e => { stream.abort(e as Error) })
        return
      }
    }
    const blob = api?.body ?? key as Digest
    if (this.uploads >= this.init.maxUploads) {
      await reply({ status: 'busy', message: `serving ${this.uploads} blobs already` }).catch(e => { stream.abort(e as Error) })
      return
    }
    this.uploads++
    let source: (GrowingBlob & { size: number, inProgress: boolean }) | undefined
    try {
      const local = await store.openRead(blob)
      if (local !== undefined) {
        source = {
          size: local.record.size, inProgress: false, release: local.release,
          ...(local.record.mediaType !== undefined ? { mediaType: local.record.mediaType } : {}),
          stream: (start, end) => local.stream(start, end === undefined ? undefined : end - 1)
        }
      } else if (api === undefined) {
        // Briefly: the peer waits for this header only CACHE_PEER_FIRST_BYTE_TIMEOUT. A download
        // whose upstream has not answered yet is `busy` for now, and the peer asks again.
        const growing = await this.components.inProgress(blob, AbortSignal.timeout(IN_PROGRESS_READY_WAIT_MS)).catch(() => undefined)
        if (growing === 'pending') {
          await reply({ status: 'busy', message: 'fetching it; the upstream has not answered yet' })
          return
        }
        if (growing?.size !== undefined) source = { ...growing, size: growing.size, inProgress: true }
        else await growing?.release()
      }
      if (source === undefined) {
        await reply({ status: 'not_found' })
        return
      }
      const size = source.size
      const start = api !== undefined ? 0 : request.start ?? 0
      const end = api !== undefined ? size : Math.min(request.end ?? size, size)
      if (start > size) {
        await reply({ status: 'bad_request', message: `range starts at ${start}, past the size ${size}` })
        return
      }
      const length = Math.max(0, end - start)
      await lp.write(encodeFrame({
        status: 'ok', size, start, length,
        ...(source.mediaType !== undefined ? { mediaType: source.mediaType } : {}),
        ...(source.inProgress ? { inProgress: true } : {}),
        ...(api !== undefined ? { api } : {})
      }), { signal: AbortSignal.timeout(this.idleTimeoutMs) })
      const raw = lp.unwrap()
      if (length > 0) {
        const body = source.stream(start, end)
        // A download in progress can wait on its source: a peer that hangs up must not hold it.
        const onClose = (): void => { body.destroy() }
        raw.addEventListener('close', onClose)
        try {
          for await (const chunk of body) {
            const buf = chunk as Buffer
            stats.inc('bytes_served_to_peers', buf.byteLength)
            // send() false = the muxer's buffer is full: wait, or memory grows with the blob.
            if (!raw.send(buf)) await raw.onDrain({ signal: AbortSignal.timeout(this.idleTimeoutMs) })
          }
        } finally {
          raw.removeEventListener('close', onClose)
        }
      }
      await raw.close({ signal: AbortSignal.timeout(this.idleTimeoutMs) })
      log.debug({ digest: key, start, length, inProgress: source.inProgress }, 'served blob to peer')
    } catch (err) {
      log.warn({ digest: key, err: (err as Error).message }, 'fetch from peer ended early')
      stream.abort(err as Error)
    } finally {
      this.uploads--
      await source?.release()
    }
  }
}
