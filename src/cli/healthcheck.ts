import { request } from 'undici'
import { localSidecarUrl } from './sidecar-url.js'

const TIMEOUT_MS = 3_000

/**
 * Exit status for container health checks (Dockerfile HEALTHCHECK, compose, an exec probe):
 * 0 when the sidecar on CACHE_HTTP_ADDR (or --url) answers /healthz (or /readyz with --ready),
 * 1 otherwise. The image has no curl, and the address follows CACHE_HTTP_ADDR.
 */
export async function healthcheckCommand (opts: { url?: string, ready?: boolean }): Promise<number> {
  const base = opts.url ?? localSidecarUrl()
  const path = opts.ready === true ? '/readyz' : '/healthz'
  try {
    const res = await request(new URL(path, base), { signal: AbortSignal.timeout(TIMEOUT_MS) })
    await res.body.dump()
    if (res.statusCode === 200) {
      process.stdout.write(`ok: ${base}${path} answered 200\n`)
      return 0
    }
    process.stderr.write(`p2p-cache: ${base}${path} answered ${res.statusCode}\n`)
  } catch (err) {
    process.stderr.write(`p2p-cache: no answer from ${base}${path} (${(err as Error).message}); is \`p2p-cache serve\` running on CACHE_HTTP_ADDR?\n`)
  }
  return 1
}
