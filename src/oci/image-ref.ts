import { arch, platform as osPlatform, endianness } from 'node:os'
import { isDigest, type Digest } from './digest.js'
import { isRepositoryName, isTag } from './reference.js'
import { P2pCacheError, EXIT_USAGE } from '../errors/p2p-cache-error.js'

/**
 * A docker-style image reference (`alpine`, `alpine:3.20`, `ghcr.io/org/img:tag`,
 * `localhost:5000/x:y`, `name@sha256:…`, `name:tag@sha256:…`), split the way a mirror needs it:
 * the registry host goes in `?ns=`, the repository in the path.
 */
export interface ImageReference {
  /** As typed, for messages. */
  readonly input: string
  /** The registry host when the reference names one (`ghcr.io`, `localhost:5000`), lowercased. */
  readonly host: string | undefined
  readonly repository: string
  readonly tag: string | undefined
  readonly digest: Digest | undefined
}

export const IMAGE_REFERENCE_EXPECTED =
  '[HOST[:PORT]/]NAME[:TAG][@sha256:<64 hex>], e.g. alpine, alpine:3.20, ghcr.io/org/img:tag, localhost:5000/x:y or name@sha256:<digest>'

export class InvalidImageReferenceError extends P2pCacheError {
  readonly code = 'REFERENCE_INVALID'
  constructor (readonly input: string, reason: string) {
    super(`invalid image reference "${input.slice(0, 300)}": ${reason}; expected ${IMAGE_REFERENCE_EXPECTED}`, { exitCode: EXIT_USAGE })
  }
}

// A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port (as docker reads it).
const LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?'
const HOST = new RegExp(`^(?:${LABEL}(?:\\.${LABEL})*|\\[[a-fA-F0-9:.]+\\])(?::[0-9]{1,5})?$`)

/** Docker's rule: the first path component is a registry host if it has a '.' or ':' or is localhost. */
function isHostComponent (component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost'
}

export function parseImageReference (input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidImageReferenceError(input, reason)
  }
  if (input.trim() === '') fail('it is empty')
  if (/\s/.test(input)) fail('it contains whitespace')

  let rest = input
  let digest: Digest | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    const d = rest.slice(at + 1)
    if (!isDigest(d)) fail(`"${d.slice(0, 100)}" is not a digest: only sha256:<64 lowercase hex characters> is supported`)
    digest = d as Digest
    rest = rest.slice(0, at)
  }

  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!isTag(tag)) {
      fail(`"${tag.slice(0, 150)}" is not a valid tag (letters, digits, _ . -, up to 128 characters, not starting with . or -)`)
    }
  }

  let host: string | undefined
  const slash = rest.indexOf('/')
  if (slash > 0 && isHostComponent(rest.slice(0, slash))) {
    host = rest.slice(0, slash).toLowerCase()
    rest = rest.slice(slash + 1)
    if (!HOST.test(host)) fail(`"${host.slice(0, 150)}" is not a registry host (a DNS name or IP address with an optional :port)`)
    // Docker writes Docker Hub as index.docker.io in places; the mirror's name for it is docker.io.
    if (host === 'index.docker.io') host = 'docker.io'
  }

  if (rest === '') fail('the repository name is missing')
  if (!isRepositoryName(rest)) {
    fail(
      rest !== rest.toLowerCase()
        ? `repository "${rest.slice(0, 150)}" has uppercase letters; repository names are lowercase`
        : `"${
          rest.slice(0, 150)
        }" is not a repository name (lowercase letters and digits, separated by . _ __ - within a component and / between components)`
    )
  }
  return { input, host, repository: rest, tag, digest }
}

/** What to ask the registry for: the digest when there is one (docker ignores the tag then), else the tag. */
export function manifestReference (ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest'
}

/** An OCI platform (`os/architecture[/variant]`), as in an image index's `platform` field. */
export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export class InvalidPlatformError extends P2pCacheError {
  constructor (readonly input: string) {
    super(
      `invalid platform "${input.slice(0, 100)}": expected OS/ARCH[/VARIANT] in OCI names, e.g. linux/amd64, linux/arm64 or linux/arm/v7`,
      { exitCode: EXIT_USAGE }
    )
  }
}

const PLATFORM_PART = /^[a-z0-9_.-]+$/

export function parsePlatform (text: string): Platform {
  const parts = text.toLowerCase().split('/')
  if (parts.length < 2 || parts.length > 3 || !parts.every(p => PLATFORM_PART.test(p))) throw new InvalidPlatformError(text)
  const [os = '', architecture = '', variant] = parts
  return variant === undefined ? { os, architecture } : { os, architecture, variant }
}

export function formatPlatform (p: Platform): string {
  return [p.os, p.architecture, ...(p.variant !== undefined && p.variant !== '' ? [p.variant] : [])].join('/')
}

// Node's names → OCI's (GOARCH) names; the rest are the same.
const ARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', mipsel: 'mipsle', mips64el: 'mips64le' }

/**
 * The platform of the containers this machine runs: linux on every host but Windows (Docker on
 * macOS runs a linux VM of the host's architecture), with arm's variant from the Node build.
 */
export function hostPlatform (): Platform {
  const os = osPlatform() === 'win32' ? 'windows' : 'linux'
  let architecture = ARCH[arch()] ?? arch()
  if (architecture === 'ppc64' && endianness() === 'LE') architecture = 'ppc64le'
  if (architecture === 'arm') {
    const version = (process.config.variables as { arm_version?: string | number }).arm_version
    return { os, architecture, variant: `v${String(version ?? '7')}` }
  }
  return { os, architecture }
}

/** The variant a platform has when none is written (arm64 is v8, as containerd normalizes it). */
function normalVariant (p: Platform): string {
  if (p.variant !== undefined && p.variant !== '') return p.variant
  return p.architecture === 'arm64' ? 'v8' : p.architecture === 'arm' ? 'v7' : ''
}

/** Whether an index entry's platform `have` runs as `want`; without a variant wanted, any variant does. */
export function platformMatches (want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false
  return want.variant === undefined || normalVariant(want) === normalVariant(have)
}
