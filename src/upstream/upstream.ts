/** An upstream as CACHE_REGISTRY_UPSTREAMS / CACHE_API_UPSTREAMS name it: `name=url`. */
export interface Upstream {
  name: string
  url: URL
}

/** A username and secret for an upstream (Basic, or exchanged for a Bearer token). */
export interface Credential {
  username: string
  password: string
}

/** A GitHub App installation whose tokens are an API upstream's fleet credential (CACHE_API_APP). */
export interface GitHubAppOption {
  appId: string
  installationId: number
  privateKeyFile: string
}
