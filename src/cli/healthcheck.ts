import { SidecarClient } from '../admin/client/client.js'
import { SidecarUnreachableError } from '../admin/client/errors.js'
import { localSidecarUrl } from './sidecar-url.js'

/** An orchestrator's probe has its own deadline: answer within it rather than be killed. */
const TIMEOUT_MS = 3_000

/**
 * Exit status for container health checks (Dockerfile HEALTHCHECK, compose, an exec probe):
 * 0 when the sidecar on CACHE_HTTP_ADDR (or --url) answers /healthz (or /readyz with --ready),
 * 1 otherwise. The image has no curl, and the address follows CACHE_HTTP_ADDR.
 */
export async function healthcheckCommand (opts: { url?: string, ready?: boolean }): Promise<number> {
  const base = opts.url ?? localSidecarUrl()
  const path = opts.ready === true ? '/readyz' : '/healthz'
  const client = new SidecarClient(base, { timeoutMs: TIMEOUT_MS })
  try {
    const { status } = opts.ready === true ? await client.ready() : await client.health()
    if (status === 200) {
      process.stdout.write(`ok: ${base}${path} answered 200\n`)
      return 0
    }
    process.stderr.write(`p2p-cache: ${base}${path} answered ${status}\n`)
  } catch (err) {
    const reason = err instanceof SidecarUnreachableError ? err.reason : (err as Error).message
    process.stderr.write(`p2p-cache: no answer from ${base}${path} (${reason}); is \`p2p-cache serve\` running on CACHE_HTTP_ADDR?\n`)
  }
  return 1
}
