import type { AbortOptions } from '@libp2p/interface'
import { createHash, createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createAppAuth } from '@octokit/auth-app'
import { request } from '@octokit/request'
import { raceSignal } from 'race-signal'
import { ConfigError } from '../errors/config-error.js'
import type { GitHubAppOption, Upstream } from './upstream.js'
import { systemClock, type Clock } from '../clock/clock.js'
import { GITHUB_APP_EXPECTED } from './constants.js'
import { P2pCacheError } from '../errors/p2p-cache-error.js'

/**
 * The operator's own credential for an API upstream (CACHE_API_AUTH, CACHE_API_APP): the one
 * the sidecar revalidates shared responses with. GitHub's ETags are specific to the token that
 * fetched them, so only a credential that outlives jobs turns repeat fetches into free 304s.
 */
export interface FleetCredential {
  readonly kind: 'token' | 'github-app'
  /**
   * The `Authorization` header value to send now (minted or refreshed when needed).
   * @throws FleetCredentialError when a GitHub App token can't be minted
   */
  authorization: (options?: AbortOptions) => Promise<string>
  /** The upstream refused `authorization` (401): the next call mints a new one if it can. */
  rejected: (authorization: string) => void
  /** Whether `authorization` is one this credential gave out (rate-limit labels). */
  owns: (authorization: string | undefined) => boolean
}

/** A fleet credential could not be used; the message says what to check, never the secret. */
export class FleetCredentialError extends P2pCacheError {
  constructor (readonly upstream: string, reason: string, options?: { cause?: unknown }) {
    super(`fleet credential for API upstream ${upstream}: ${reason}`, options)
  }
}

/**
 * A name for the validators a credential receives that is the same on every node holding that
 * credential and reveals nothing usable: a peer's record carries it, so a node sends the
 * record's ETag only when its own credential received that ETag.
 */
export function validatorIdentity (authorization: string): string {
  return createHash('sha256').update('p2p-cache validator\0').update(authorization).digest('hex').slice(0, 32)
}

/** A fixed token (`CACHE_API_AUTH=<name>=<token>`): a PAT, or a long-lived bot token. */
export class StaticToken implements FleetCredential {
  readonly kind = 'token'
  private readonly header: string

  constructor (token: string) {
    this.header = `Bearer ${token}`
  }

  async authorization (): Promise<string> {
    return this.header
  }

  rejected (): void {}

  owns (authorization: string | undefined): boolean {
    return authorization === this.header
  }
}

export interface GitHubAppInit {
  /** API upstream name (messages) and its base URL (where tokens are minted). */
  upstream: string
  baseUrl: string
  appId: string
  installationId: number
  /** The app's private key (PEM). */
  privateKey: string
  /** When tokens are due for replacement is computed on it (default: the system clock). */
  clock?: Clock
}

/** A token is replaced this long before it expires, or at a quarter of its lifetime if shorter. */
const REFRESH_MARGIN_MS = 5 * 60_000

/**
 * GitHub App installation tokens (`CACHE_API_APP`), minted with @octokit/auth-app from the app's
 * private key and replaced before they expire (GitHub: after one hour) or once refused.
 */
export class GitHubAppInstallation implements FleetCredential {
  readonly kind = 'github-app'
  private readonly auth: ReturnType<typeof createAppAuth>
  private current: { header: string, refreshAt: number } | undefined
  private minting: Promise<string> | undefined
  private readonly given = new Set<string>()
  private readonly clock: Clock

  constructor (private readonly init: GitHubAppInit) {
    this.clock = init.clock ?? systemClock
    this.auth = createAppAuth({
      appId: init.appId,
      privateKey: init.privateKey,
      installationId: init.installationId,
      request: request.defaults({ baseUrl: init.baseUrl })
    })
  }

  async authorization (options: AbortOptions = {}): Promise<string> {
    const current = this.current
    if (current !== undefined && this.clock.now() < current.refreshAt) return current.header
    this.minting ??= this.mint().finally(() => {
      this.minting = undefined
    })
    return await raceSignal(this.minting, options.signal)
  }

  rejected (authorization: string): void {
    if (this.current?.header === authorization) this.current = undefined
  }

  owns (authorization: string | undefined): boolean {
    return authorization !== undefined && this.given.has(authorization)
  }

  private async mint (): Promise<string> {
    let minted: { token: string, expiresAt?: string }
    try {
      // auth-app keeps tokens for 59 minutes whatever their expiry: `refresh` asks for a new one.
      minted = await this.auth({ type: 'installation', refresh: true }) as { token: string, expiresAt?: string }
    } catch (err) {
      const status = (err as { status?: unknown }).status
      throw new FleetCredentialError(
        this.init.upstream,
        `could not mint an installation token for app ${this.init.appId}, installation ${this.init.installationId}` +
          `${
            typeof status === 'number' ? ` (upstream answered ${status})` : ''
          }: check the app id, the installation id and the private key in CACHE_API_APP`,
        { cause: err }
      )
    }
    const now = this.clock.now()
    const expiresAt = minted.expiresAt === undefined ? now + 3_600_000 : Date.parse(minted.expiresAt)
    const lifetime = Math.max(0, expiresAt - now)
    const header = `Bearer ${minted.token}`
    this.current = { header, refreshAt: expiresAt - Math.min(REFRESH_MARGIN_MS, lifetime / 4) }
    // Labels only: old tokens stay known so a late rate-limit note is still named `fleet`.
    this.given.add(header)
    if (this.given.size > 64) this.given.delete(this.given.values().next().value as string)
    return header
  }
}

/**
 * The fleet credential of each API upstream that has one (CACHE_API_AUTH, CACHE_API_APP).
 * Reads the GitHub App private keys now, before anything starts.
 * @throws ConfigError naming CACHE_API_APP when a key file can't be read or is not a PEM private key
 */
export function loadFleetCredentials (
  upstreams: Upstream[],
  tokens: Map<string, string>,
  apps: Map<string, GitHubAppOption>
): Map<string, FleetCredential> {
  const out = new Map<string, FleetCredential>()
  for (const [name, token] of tokens) out.set(name, new StaticToken(token))
  for (const [name, app] of apps) {
    const upstream = upstreams.find(u => u.name === name)
    if (upstream === undefined) continue
    const fileError = (reason: string): ConfigError =>
      new ConfigError('CACHE_API_APP', '', GITHUB_APP_EXPECTED, `file ${JSON.stringify(app.privateKeyFile)} ${reason}`)
    let privateKey: string
    try {
      privateKey = readFileSync(app.privateKeyFile, 'utf8')
    } catch (err) {
      throw fileError(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    try {
      createPrivateKey(privateKey)
    } catch {
      throw fileError("is not a PEM private key (generate one on the app's settings page)")
    }
    out.set(
      name,
      new GitHubAppInstallation({
        upstream: name,
        baseUrl: upstream.url.href.replace(/\/+$/, ''),
        appId: app.appId,
        installationId: app.installationId,
        privateKey
      })
    )
  }
  return out
}
