import { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { StoreReader } from '../store/roles.js'
import type { BlobResolver } from './blob-resolver.js'
import { storedSource, type BlobSource } from './source.js'
import type { RegistryUpstream, UpstreamResponse } from '../upstream/registry-upstream.js'
import { UpstreamStatusError } from '../upstream/errors.js'

export interface SwarmBlobsInit {
  store: Pick<StoreReader, 'openRead'>
  /** Peers (verified, single-flighted); undefined without P2P: this store only. */
  blobs?: Pick<BlobResolver, 'open'> | undefined
}

/**
 * Blobs that only runners hold, with no upstream behind them (pushes to the local namespace,
 * Actions cache entries): this node's store, else a peer through the blob resolver.
 */
export class SwarmBlobs {
  private readonly nowhere: RegistryUpstream = new NoUpstream()

  constructor (private readonly init: SwarmBlobsInit) {}

  /**
   * `digest` for one response (`repo` names it in logs). The caller releases the source.
   * @throws the error `missing` makes when no runner has it; the resolver's other errors
   */
  async open (repo: string, digest: Digest, missing: () => Error): Promise<BlobSource> {
    const local = await this.init.store.openRead(digest)
    if (local !== undefined) return storedSource(local)
    if (this.init.blobs === undefined) throw missing()
    try {
      return await this.init.blobs.open(this.nowhere, repo, digest)
    } catch (err) {
      if (err instanceof UpstreamStatusError && err.status === 404) throw missing()
      throw err
    }
  }

  /**
   * Brings `digest` into this store from a peer or the bucket (a push whose client skipped a blob
   * because HEAD found it elsewhere). @returns whether the store has it now
   */
  async fetch (repo: string, digest: Digest): Promise<boolean> {
    for (let i = 0; i < FETCH_TRIES; i++) {
      let source: BlobSource
      try {
        source = await this.open(repo, digest, () => new Error('missing'))
      } catch {
        return false
      }
      try {
        if (source.cache === 'HIT') return true
        // Read to the end: the download commits it, and the next open finds it stored.
        for await (const chunk of source.stream(0, undefined)) void chunk
      } catch {
        return false
      } finally {
        await source.release()
      }
    }
    return false
  }
}

/** Tries of SwarmBlobs.fetch: the download, then the look that finds it committed. */
const FETCH_TRIES = 3

/** The "upstream" of content only runners hold: every request is a 404. */
class NoUpstream implements RegistryUpstream {
  readonly name = 'swarm'
  readonly url = new URL('http://swarm.invalid')

  async send (): Promise<UpstreamResponse> {
    return { status: 404, headers: {}, body: Readable.from([]) }
  }

  async sendOk (_method: 'GET' | 'HEAD', _repo: string, path: string): Promise<UpstreamResponse> {
    throw new UpstreamStatusError(this.name, 404, `${path.slice(0, 200)}: only runners hold it`, 'text/plain')
  }

  async close (): Promise<void> {}
}
