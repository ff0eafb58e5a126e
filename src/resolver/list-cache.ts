import type { AbortOptions } from '@libp2p/interface'
import type { Level } from 'level'
import type { Logger } from 'pino'
import type { Stats } from '../metrics/stats.js'
import { OciError } from '../oci/errors.js'
import { discard, readBounded, readLimited } from '../io/bounded-body.js'
import type { RegistryUpstream } from '../upstream/registry-upstream.js'
import { UpstreamStatusError, UpstreamUnavailableError } from '../upstream/errors.js'
import { isNoSpace } from '../store/errors.js'

/** A stored list answer (tags/list, referrers, a fallback-tag index). */
interface ListRecord {
  /** base64 */
  body: string
  contentType: string
  link?: string
  etag?: string
  storedAt: number
}

/** What a list request is answered with. */
export interface ListAnswer {
  body: Buffer
  contentType: string
  link?: string
  /** MISS: a full upstream answer; REVALIDATED: the upstream's 304 confirmed the stored one; STALE: the upstream is unavailable. */
  cache: 'MISS' | 'REVALIDATED' | 'STALE'
  origin: string
  /** When the stored answer was fetched (STALE only). */
  storedAt?: number
}

/** Lists larger than this are passed through but not stored. */
const MAX_LIST_BYTES = 4 * 1024 * 1024

/**
 * The registry's JSON list endpoints (`/v2/<name>/tags/list`, `/v2/<name>/referrers/<digest>`):
 * unlike content, they change, so each request asks the upstream, with `If-None-Match` when a
 * stored answer has an ETag; the last answer is served (marked stale) while it is unavailable.
 */
export class ListCache {
  private readonly db

  constructor (root: Level<string, unknown>, private readonly init: { stats: Stats, log: Logger }) {
    this.db = root.sublevel<string, ListRecord>('lists', { valueEncoding: 'json' })
  }

  /**
   * GET `path` (with its query) of `repo` at `client`'s upstream.
   * @throws UpstreamStatusError for the upstream's own non-2xx answer (404...), UpstreamUnavailableError
   *   when it can't answer and nothing is stored, OciError when the list is larger than MAX_LIST_BYTES
   */
  async get (client: RegistryUpstream, repo: string, path: string, accept: string, options: AbortOptions = {}): Promise<ListAnswer> {
    const key = `${client.name} ${path}#${accept}`
    const stored = await this.db.get(key)
    try {
      const res = await client.send(
        'GET',
        repo,
        path,
        { accept, ...(stored?.etag !== undefined ? { 'if-none-match': stored.etag } : {}) },
        options
      )
      if (res.status === 304 && stored !== undefined) {
        discard(res.body)
        this.init.stats.inc('revalidations_304')
        return { ...answerOf(stored), cache: 'REVALIDATED', origin: client.name }
      }
      if (res.status < 200 || res.status > 299) {
        // The upstream's own answer (404 NAME_UNKNOWN...) goes to the client as it is.
        throw new UpstreamStatusError(client.name, res.status, await readLimited(res.body, 64 * 1024), res.headers['content-type'])
      }
      const body = await readBounded(res.body, MAX_LIST_BYTES)
      if (body === undefined) {
        throw new OciError(
          502,
          'UNSUPPORTED',
          `upstream ${client.name} sent a list larger than ${MAX_LIST_BYTES} bytes for ${path.slice(0, 200)}`
        )
      }
      const record: ListRecord = {
        body: body.toString('base64'),
        contentType: res.headers['content-type'] ?? 'application/json',
        storedAt: Date.now(),
        ...(res.headers.link !== undefined ? { link: res.headers.link } : {}),
        ...(res.headers.etag !== undefined ? { etag: res.headers.etag } : {})
      }
      // On a full disk the answer is not remembered, and still given.
      await this.db.put(key, record).catch((err: unknown) => {
        if (!isNoSpace(err)) throw err
      })
      return { ...answerOf(record), cache: 'MISS', origin: client.name }
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError) || stored === undefined) throw err
      this.init.log.warn({
        upstream: client.name,
        path: path.slice(0, 200),
        storedAt: new Date(stored.storedAt).toISOString(),
        reason: err.message
      }, 'upstream unavailable; serving the last answer for this list')
      return { ...answerOf(stored), cache: 'STALE', origin: 'local', storedAt: stored.storedAt }
    }
  }
}

function answerOf (record: ListRecord): Omit<ListAnswer, 'cache' | 'origin'> {
  return {
    body: Buffer.from(record.body, 'base64'),
    contentType: record.contentType,
    ...(record.link !== undefined ? { link: record.link } : {})
  }
}
