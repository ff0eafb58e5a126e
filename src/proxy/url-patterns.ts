import { normalizeHost } from './host-list.js'

/**
 * CACHE_PROXY_PATTERNS: which intercepted URLs are immutable downloads, stored by the sha256 of
 * their bytes. Each entry is `host/path`: the host exactly, or `*.example.com` for its
 * subdomains; in the path `*` matches within one segment and `**` across segments
 * (`registry.npmjs.org/**\/-/*.tgz`). The query string is not matched.
 */
export class UrlPatterns {
  private constructor (readonly entries: readonly string[], private readonly compiled: ReadonlyArray<{ host: string, path: RegExp }>) {}

  /**
   * Parses a comma separated list; empty entries are skipped.
   * @throws RangeError naming the first entry that is not `host/path`
   */
  static parse (text: string): UrlPatterns {
    const entries = text.split(',').map(e => e.trim()).filter(e => e !== '')
    const compiled = entries.map(entry => {
      const slash = entry.indexOf('/')
      const rawHost = slash < 0 ? entry : entry.slice(0, slash)
      const wild = rawHost.startsWith('*.')
      const host = normalizeHost(wild ? rawHost.slice(2) : rawHost)
      if (slash < 0 || host === undefined || /[\s?#]/.test(entry)) {
        throw new RangeError(
          `entry ${
            JSON.stringify(entry.slice(0, 200))
          } is not host/path (e.g. registry.npmjs.org/**/-/*.tgz: * within a path segment, ** across segments)`
        )
      }
      return { host: wild ? `*.${host}` : host, path: glob(entry.slice(slash)) }
    })
    return new UrlPatterns(entries, compiled)
  }

  get empty (): boolean {
    return this.entries.length === 0
  }

  /** Whether `host` (normalized) and `pathname` (raw, no query) are on the list. */
  matches (host: string, pathname: string): boolean {
    return this.compiled.some(p => (p.host.startsWith('*.') ? host.endsWith(p.host.slice(1)) : host === p.host) && p.path.test(pathname))
  }
}

/** `/a/**\/-/*.tgz` → a RegExp: `**` any run of characters, `*` any run without `/`. */
function glob (path: string): RegExp {
  const source = path.split(/(\*\*|\*)/).map(part =>
    part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')
  ).join('')
  return new RegExp(`^${source}$`)
}
