import type { Level } from 'level'
import { isDigest, type Digest } from '../oci/digest.js'
import { isTagKey, parseTagKey, type TagKey } from '../oci/tag-key.js'
import { isNoSpace } from '../store/errors.js'

export interface TagRecord {
  digest: Digest
  mediaType: string
  size?: number
  resolvedAt: number
}

/** `value` as a TagRecord (one read back from the bucket), or undefined when it is not one. */
export function parseTagRecord (value: unknown): TagRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  if (
    typeof v.digest !== 'string' || !isDigest(v.digest) || typeof v.mediaType !== 'string' || v.mediaType.length > 200 ||
    typeof v.resolvedAt !== 'number' || !Number.isSafeInteger(v.resolvedAt) ||
    (v.size !== undefined && (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0))
  ) return undefined
  return { digest: v.digest, mediaType: v.mediaType, resolvedAt: v.resolvedAt, ...(typeof v.size === 'number' ? { size: v.size } : {}) }
}

/**
 * The last digest each tag resolved to, per upstream and per Accept class, so a pull by tag
 * can still be served while the upstream is unreachable. Never consulted when it answers.
 */
export class TagCache {
  private readonly db

  constructor (root: Level<string, unknown>) {
    this.db = root.sublevel<string, TagRecord>('tags', { valueEncoding: 'json' })
  }

  private key (upstream: string, repo: string, tag: string, acceptClass: string): string {
    return `${upstream}/${repo}:${tag}#${acceptClass}`
  }

  async get (upstream: string, repo: string, tag: string, acceptClass: string): Promise<TagRecord | undefined> {
    return await this.db.get(this.key(upstream, repo, tag, acceptClass))
  }

  /** The record for a swarm tag key (a peer asking while its upstream is down). */
  async lookup (key: TagKey): Promise<TagRecord | undefined> {
    const parsed = parseTagKey(key)
    return parsed === undefined ? undefined : await this.get(parsed.upstream, parsed.repo, parsed.tag, parsed.acceptClass)
  }

  /** The swarm key of every tag remembered here: announced again at start-up, like stored blobs. */
  async *swarmKeys (): AsyncGenerator<TagKey> {
    for await (const key of this.db.keys()) {
      // The index key is the swarm key without its `tag:` prefix (see `key`).
      const swarmKey = `tag:${key}`
      if (isTagKey(swarmKey)) yield swarmKey
    }
  }

  /** Remembers a resolution; on a full disk it is not remembered (the tag is resolved again next time). */
  async set (upstream: string, repo: string, tag: string, acceptClass: string, record: TagRecord): Promise<void> {
    await this.db.put(this.key(upstream, repo, tag, acceptClass), record).catch((err: unknown) => {
      if (!isNoSpace(err)) throw err
    })
  }
}
