/**
 * What an API path names, as far as sharing it between credentials goes (GitHub REST layout:
 * https://docs.github.com/rest).
 */
export interface ApiTarget {
  /** `owner/name`, lower case (GitHub names are case-insensitive), for `/repos/{owner}/{repo}[/...]`. */
  repo?: string
  /**
   * The part of the repository the path is in: `''` for the repository itself, else the first
   * segment after it (`issues`, `pulls`, `contents`...; `actions/<next>` under `actions`, whose
   * parts differ in who may read them). Fine-grained tokens and GITHUB_TOKEN are granted per
   * such area, so access proven in one does not open another.
   */
  section: string
  /**
   * The representation is the same for every credential that may see it: a repository's
   * resources and public user profiles. Not `/user`, `/notifications`, search or listings of
   * "my" things, whose body depends on who asks: those are never shared across credentials.
   */
  shared: boolean
}

const REPO = /^\/repos\/([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)(?:\/([^/?]*)(?:\/([^/?]*))?)?/
const USER_PROFILE = /^\/users\/[A-Za-z0-9-]+\/?$/

/** Classifies `path` (path and query at the upstream). */
export function apiTarget (path: string): ApiTarget {
  const pathname = path.split('?')[0] ?? path
  const m = REPO.exec(pathname)
  if (m !== null) {
    const first = m[3] ?? ''
    return {
      repo: `${m[1] ?? ''}/${m[2] ?? ''}`.toLowerCase(),
      section: first === 'actions' ? `actions/${m[4] ?? ''}` : first,
      shared: true
    }
  }
  return { section: '', shared: USER_PROFILE.test(pathname) }
}

/**
 * The repository (`owner/name`, lower case) whose own resource `path` is: `/repos/{owner}/{repo}`
 * without a query, any case. Its answer says the repository's visibility. Undefined otherwise.
 */
export function repositoryResource (path: string): string | undefined {
  const repo = apiTarget(path).repo
  return repo !== undefined && path.toLowerCase() === `/repos/${repo}` ? repo : undefined
}

/**
 * Areas of a public repository that anyone may read (GitHub serves them to anonymous
 * requests). The rest (hooks, keys, collaborators, secrets, runners, settings...) needs rights
 * a fleet credential may have and a client may not: those are never served from the fleet's
 * copy without the client's own proof.
 */
const PUBLIC_SECTIONS = new Set([
  '',
  'contents',
  'readme',
  'commits',
  'branches',
  'tags',
  'releases',
  'git',
  'compare',
  'languages',
  'topics',
  'license',
  'contributors',
  'stargazers',
  'forks',
  'issues',
  'pulls',
  'labels',
  'milestones',
  'statuses',
  'check-runs',
  'check-suites',
  'actions/runs',
  'actions/workflows',
  'actions/artifacts',
  'actions/jobs'
])

/** Whether anyone may read `section` of a public repository. */
export function publicSection (section: string): boolean {
  return PUBLIC_SECTIONS.has(section)
}
