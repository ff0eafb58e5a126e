/** What the sidecar remembers of one family of registry clients. */
export interface ClientSeen {
  /** ISO time of the latest request. */
  last_seen: string
  requests: number
  /** The latest User-Agent of the family, as sent (first 200 characters). */
  user_agent: string
}

/** User-Agent → client family: who pulls through this sidecar (diagnose: "configured but never reached"). */
const FAMILIES: Array<[family: string, pattern: RegExp]> = [
  ['docker', /^docker\//i],
  ['containerd', /^containerd\//i],
  ['podman', /^libpod\//i],
  ['buildah', /^buildah\//i],
  ['skopeo', /^skopeo\//i],
  ['crane', /^(crane|go-containerregistry)\//i],
  ['kubelet', /^(kubelet|cri-o)\//i],
  ['p2p-cache', /^p2p-cache\//i],
  ['curl', /^curl\//i]
]

export function clientFamily (userAgent: string | undefined): string {
  if (userAgent === undefined || userAgent === '') return 'unknown'
  return FAMILIES.find(([, pattern]) => pattern.test(userAgent))?.[0] ?? 'other'
}

/** The latest registry request of each client family (GET /api/cache/clients). Bounded by the family list. */
export class ClientLog {
  private readonly seen = new Map<string, ClientSeen>()

  note (userAgent: string | undefined): void {
    const family = clientFamily(userAgent)
    const previous = this.seen.get(family)
    this.seen.set(family, {
      last_seen: new Date().toISOString(),
      requests: (previous?.requests ?? 0) + 1,
      user_agent: (userAgent ?? '').slice(0, 200)
    })
  }

  snapshot (): Record<string, ClientSeen> {
    return Object.fromEntries(this.seen)
  }
}
