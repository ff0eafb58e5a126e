import { Agent } from 'undici'
import { ConfigError } from '../errors/config-error.js'
import { parseDuration } from '../config/units.js'
import { hostPlatform, parseImageReference, parsePlatform } from '../oci/image-ref.js'
import { SidecarClient } from '../admin/client/client.js'
import { localSidecarUrl } from './sidecar-url.js'
import { SidecarAnswerError, UnusableImageError } from './warm/errors.js'
import type { PlatformChoice } from './warm/image-manifests.js'
import { BarReporter, LineReporter, type WarmReporter } from './warm/progress.js'
import { SidecarRegistry } from './warm/sidecar-registry.js'
import { Warmer } from './warm/warmer.js'

export interface WarmFlags {
  url?: string
  platform?: string
  allPlatforms?: boolean
  concurrency?: string
  timeout?: string
}

interface Settings {
  base: string
  choice: PlatformChoice
  concurrency: number
  timeoutMs: number
}

const DEFAULT_CONCURRENCY = 4
const DEFAULT_TIMEOUT = '5m'

function settingsFrom (flags: WarmFlags): Settings {
  const concurrencyText = flags.concurrency ?? String(DEFAULT_CONCURRENCY)
  const concurrency = /^\d+$/.test(concurrencyText) ? Number(concurrencyText) : NaN
  if (!(concurrency >= 1 && concurrency <= 64)) {
    throw new ConfigError('--concurrency', concurrencyText, 'a whole number from 1 to 64 (requests to the sidecar at once)')
  }
  const timeoutText = flags.timeout ?? DEFAULT_TIMEOUT
  const timeoutMs = parseDuration(timeoutText)
  if (timeoutMs === undefined || timeoutMs < 1_000) {
    throw new ConfigError('--timeout', timeoutText, 'a duration of at least 1s, e.g. 30s or 10m')
  }
  if (flags.platform !== undefined && flags.allPlatforms === true) {
    throw new ConfigError('--platform', flags.platform, 'either --platform or --all-platforms, not both')
  }
  const choice: PlatformChoice = flags.allPlatforms === true
    ? { all: true }
    : { all: false, platform: flags.platform === undefined ? hostPlatform() : parsePlatform(flags.platform) }
  const base = flags.url ?? localSidecarUrl()
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
    throw new ConfigError('--url', base, "the sidecar's http(s) URL, e.g. http://127.0.0.1:9080")
  }
  return { base, choice, concurrency, timeoutMs }
}

/**
 * `p2p-cache warm IMAGE...`: pulls each image's manifests and blobs through the running sidecar
 * so that they are in its store (and announced to peers) before a job needs them.
 * Returns the exit code: 0 all warmed, 1 an image failed. Unusable input throws (exit 2).
 */
export async function warmCommand (images: string[], flags: WarmFlags): Promise<number> {
  const refs = images.map(parseImageReference)
  const settings = settingsFrom(flags)
  const agent = new Agent({ connections: settings.concurrency + 1 })
  try {
    const sidecar = new SidecarRegistry(new SidecarClient(settings.base, { dispatcher: agent, timeoutMs: settings.timeoutMs }))
    await sidecar.probe()
    const reporter: WarmReporter = process.stderr.isTTY === true ? new BarReporter() : new LineReporter()
    const warmer = new Warmer(sidecar, settings, reporter)
    let failures = 0
    await Promise.all(refs.map(async ref => {
      try {
        await warmer.warm(ref)
      } catch (err) {
        failures++
        const hint = err instanceof SidecarAnswerError || err instanceof UnusableImageError ? err.hint : undefined
        reporter.imageFailed(ref.input, (err as Error).message ?? String(err), hint)
      }
    }))
    reporter.finish()
    return failures === 0 ? 0 : 1
  } finally {
    await agent.close()
  }
}
