/**
 * Hosts whose TLS the proxy terminates by default (CACHE_PROXY_INTERCEPT replaces the list): the
 * registries dockerd's registry-mirrors never covers (moby/moby#18818), Docker Hub's own, and the
 * package hosts of the immutable-download patterns. Every other host is a plain tunnel.
 */
export const DEFAULT_INTERCEPT = [
  'registry-1.docker.io',
  'ghcr.io',
  'quay.io',
  'gcr.io',
  '*.gcr.io',
  '*.pkg.dev',
  'registry.k8s.io',
  'public.ecr.aws',
  'mcr.microsoft.com',
  'registry.npmjs.org',
  'files.pythonhosted.org',
  'proxy.golang.org'
].join(',')

/**
 * Immutable downloads stored by digest by default (CACHE_PROXY_PATTERNS replaces the list): npm
 * tarballs, PyPI files, Go module zips. Each URL's bytes never change once published.
 */
export const DEFAULT_PATTERNS = [
  'registry.npmjs.org/**/-/*.tgz',
  'files.pythonhosted.org/packages/**',
  'proxy.golang.org/**/@v/*.zip'
].join(',')

/** Where the CA lives inside CACHE_DIR when the sidecar makes its own. */
export const CA_DIR = 'proxy-ca'
/** The generated CA is valid this long (10 years); a new one is made only when the intercept list changes. */
export const CA_VALIDITY_MS = 10 * 365 * 24 * 3600_000
/** A minted leaf certificate is valid this long, and minted again a day before it ends. */
export const LEAF_VALIDITY_MS = 7 * 24 * 3600_000
/** Leaves start this far in the past, for clients whose clocks run behind. */
export const BACKDATE_MS = 3600_000
/** Leaves kept in memory (by host name); the least recently used goes first. */
export const LEAF_CACHE_MAX = 1000

/** Time a client has to finish the TLS handshake on an intercepted connection. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Time the proxy waits for a tunnel's target to accept the connection. */
export const CONNECT_TIMEOUT_MS = 10_000
/** Registry clients made for intercepted hosts that CACHE_REGISTRY_UPSTREAMS does not name, at most. */
export const PROXY_UPSTREAMS_MAX = 64
/**
 * A repository the sidecar's own access was refused (a private one) is relayed with the client's
 * credentials for this long before the sidecar tries its own access again.
 */
export const REFUSED_REPOSITORY_MS = 60_000
/**
 * A client's credential confirmed (by an authorized HEAD) to read one digest of one repository is
 * trusted for it this long: its next pulls are served from the private store without asking.
 */
export const CONFIRMED_ACCESS_MS = 5 * 60_000
/** Where content read with clients' own credentials is kept, inside CACHE_DIR; never announced. */
export const PRIVATE_STORE_DIR = 'private'
/** The private store's share of CACHE_MAX_SIZE. */
export const PRIVATE_STORE_SHARE = 0.1
