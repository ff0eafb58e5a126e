/**
 * What an API path names, as far as sharing it between credentials goes (GitHub REST layout:
 * https://docs.github.com/rest).
 */
export interface ApiTarget {
  /** `owner/name`, lower case (GitHub names are case-insensitive), for `/repos/{owner}/{repo}[/...]`. */
  repo?: string
  /**
   * The part of the repository the path is in: `''` for the repository itself, else the first
   * segment after it (`issues`, `pulls`, `contents`...). Fine-grained tokens and GITHUB_TOKEN
   * are granted per such area, so access proven in one does not open another.
   */
  section: string
  /**
   * The representation is the same for every credential that may see it: a repository's
   * resources and public user profiles. Not `/user`, `/notifications`, search or listings of
   * "my" things, whose body depends on who asks: those are never shared across credentials.
   */
  shared: boolean
}

const REPO = /^\/repos\/([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)(?:\/([^/?]*))?/
const USER_PROFILE = /^\/users\/[A-Za-z0-9-]+\/?$/

/** Classifies `path` (path and query at the upstream). */
export function apiTarget (path: string): ApiTarget {
  const pathname = path.split('?')[0] ?? path
  const m = REPO.exec(pathname)
  if (m !== null) return { repo: `${m[1] ?? ''}/${m[2] ?? ''}`.toLowerCase(), section: m[3] ?? '', shared: true }
  return { section: '', shared: USER_PROFILE.test(pathname) }
}
