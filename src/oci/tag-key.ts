import { isRepositoryName, isTag } from './reference.js'

/**
 * The swarm-wide name of a tag resolution: `tag:<upstream>/<repo>:<tag>#<index|single>`. Peers
 * announce the keys of tags they resolved and answer them from their tag cache, so a runner can
 * still pull by tag while the upstream is down if any runner resolved that tag recently.
 */
export type TagKey = `tag:${string}`

const TAG_KEY = /^tag:([A-Za-z0-9.:_-]{1,255})\/(.+):([^:/#]+)#(index|single)$/

export function tagKey (upstream: string, repo: string, tag: string, acceptClass: string): TagKey {
  return `tag:${upstream}/${repo}:${tag}#${acceptClass}`
}

export function parseTagKey (key: string): { upstream: string, repo: string, tag: string, acceptClass: 'index' | 'single' } | undefined {
  const m = TAG_KEY.exec(key)
  if (m === null) return undefined
  const [, upstream, repo, tag, acceptClass] = m as unknown as [string, string, string, string, 'index' | 'single']
  return isRepositoryName(repo) && isTag(tag) ? { upstream, repo, tag, acceptClass } : undefined
}

export function isTagKey (key: string): key is TagKey {
  return parseTagKey(key) !== undefined
}
