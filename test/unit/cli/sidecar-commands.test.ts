import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { gcCommand } from '../../../src/cli/gc.js'
import { healthcheckCommand } from '../../../src/cli/healthcheck.js'
import { SidecarUnreachableError } from '../../../src/admin/client/errors.js'
import { statsCommand } from '../../../src/cli/stats.js'
import { closeServer, listenLocal } from '../http/local.js'

/** Runs `fn` with stdout and stderr captured (mocha prints nothing while a test awaits). */
async function captured<T> (fn: () => Promise<T>): Promise<{ result: T, stdout: string, stderr: string }> {
  const out = { stdout: '', stderr: '' }
  const write = { stdout: process.stdout.write, stderr: process.stderr.write }
  process.stdout.write = (chunk: string | Uint8Array): boolean => {
    out.stdout += String(chunk)
    return true
  }
  process.stderr.write = (chunk: string | Uint8Array): boolean => {
    out.stderr += String(chunk)
    return true
  }
  try {
    return { result: await fn(), ...out }
  } finally {
    process.stdout.write = write.stdout
    process.stderr.write = write.stderr
  }
}

/** An http:// URL nothing listens on. */
async function deadUrl (): Promise<string> {
  const closed = createServer()
  const port = await listenLocal(closed)
  await closeServer(closed)
  return `http://127.0.0.1:${port}`
}

describe('commands that ask a running sidecar: their words and exit codes', () => {
  let server: Server
  let base: string
  let handle: (req: IncomingMessage, res: ServerResponse) => void

  before(async () => {
    server = createServer((req, res) => {
      handle(req, res)
    })
    base = `http://127.0.0.1:${await listenLocal(server)}`
  })

  after(async () => {
    await closeServer(server)
  })

  describe('stats', () => {
    it("--json prints the sidecar's JSON as it sent it", async () => {
      handle = (_req, res) => {
        res.writeHead(200).end('{"stores":7}')
      }
      const { stdout } = await captured(async () => {
        await statsCommand({ url: base, json: true })
      })
      assert.deepEqual(JSON.parse(stdout), { stores: 7 })
    })

    it('no sidecar, or an answer that is not the stats: SidecarUnreachableError (exit 2) with the usual sentence', async () => {
      const dead = await deadUrl()
      await assert.rejects(
        statsCommand({ url: dead }),
        (err: unknown) =>
          err instanceof SidecarUnreachableError && err.message.startsWith(`cannot reach a sidecar at ${dead} (`) &&
          err.message.endsWith('is `p2p-cache serve` running? Pass --url or set CACHE_HTTP_ADDR')
      )
      handle = (_req, res) => {
        res.writeHead(404).end('{"error":"no such endpoint GET /api/cache/stats"}')
      }
      await assert.rejects(
        statsCommand({ url: base }),
        (err: unknown) =>
          err instanceof SidecarUnreachableError &&
          err.message.startsWith(
            `cannot reach a sidecar at ${base} (GET /api/cache/stats answered 404: no such endpoint GET /api/cache/stats); `
          )
      )
    })
  })

  describe('gc', () => {
    it("through the sidecar: what it removed and the store's size", async () => {
      handle = (_req, res) => {
        res.writeHead(200).end('{"removed":2,"current_size":2048}')
      }
      const { stdout } = await captured(async () => {
        await gcCommand({ url: base })
      })
      assert.equal(stdout, `gc via sidecar at ${base}: removed 2 blobs, store now 2.0 KiB\n`)
    })

    it('a refusal names the sidecar and its reason', async () => {
      handle = (_req, res) => {
        res.writeHead(403).end('{"error":"admin calls are allowed from loopback"}')
      }
      await assert.rejects(
        gcCommand({ url: base }),
        (err: unknown) =>
          !(err instanceof SidecarUnreachableError) &&
          (err as Error).message === `sidecar at ${base} refused gc: admin calls are allowed from loopback`
      )
    })

    it("--url with nothing there fails with the transport's words (exit 1), and does not prune anything local", async () => {
      const dead = await deadUrl()
      await assert.rejects(
        gcCommand({ url: dead }),
        (err: unknown) => !(err instanceof SidecarUnreachableError) && /ECONNREFUSED/.test((err as Error).message)
      )
    })
  })

  describe('healthcheck', () => {
    it('0 when /healthz answers 200; 1 with the status otherwise (--ready asks /readyz)', async () => {
      handle = (req, res) => {
        res.writeHead(req.url === '/readyz' ? 503 : 200).end('{}')
      }
      const up = await captured(async () => await healthcheckCommand({ url: base }))
      assert.equal(up.result, 0)
      assert.equal(up.stdout, `ok: ${base}/healthz answered 200\n`)
      const starting = await captured(async () => await healthcheckCommand({ url: base, ready: true }))
      assert.equal(starting.result, 1)
      assert.equal(starting.stderr, `p2p-cache: ${base}/readyz answered 503\n`)
    })

    it('1 with "no answer" and the transport\'s reason when nothing listens', async () => {
      const dead = await deadUrl()
      const down = await captured(async () => await healthcheckCommand({ url: dead }))
      assert.equal(down.result, 1)
      assert.match(
        down.stderr,
        /^p2p-cache: no answer from http:\/\/127\.0\.0\.1:\d+\/healthz \(connect ECONNREFUSED 127\.0\.0\.1:\d+\); is `p2p-cache serve` running on CACHE_HTTP_ADDR\?\n$/
      )
    })
  })
})
