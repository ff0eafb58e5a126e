import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { SidecarClient } from '../../../../src/admin/client/client.js'
import { SidecarUnreachableError } from '../../../../src/admin/client/errors.js'
import { SidecarAnswerError, UnusableImageError } from '../../../../src/cli/warm/errors.js'
import type { Descriptor } from '../../../../src/cli/warm/image-manifests.js'
import { SidecarRegistry } from '../../../../src/cli/warm/sidecar-registry.js'
import { parseImageReference } from '../../../../src/oci/image-ref.js'
import { MAX_MANIFEST_BYTES, OCI_MANIFEST } from '../../../../src/oci/media-types.js'
import { closeServer, listenLocal } from '../../http/local.js'

const sha256 = (b: Buffer): `sha256:${string}` => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe("warm: the sidecar's registry API over the sidecar client", () => {
  let server: Server
  let base: string
  let urls: string[]
  let handle: (req: IncomingMessage, res: ServerResponse) => void

  before(async () => {
    server = createServer((req, res) => {
      urls.push(req.url ?? '')
      handle(req, res)
    })
    base = `http://127.0.0.1:${await listenLocal(server)}`
  })

  beforeEach(() => {
    urls = []
  })

  after(async () => {
    await closeServer(server)
  })

  const registry = (timeoutMs = 10_000): SidecarRegistry => new SidecarRegistry(new SidecarClient(base, { timeoutMs }))

  it('a manifest: its bytes, digest, media type and X-Cache; a reference with a host goes with ?ns=', async () => {
    const body = Buffer.from('{"schemaVersion":2}')
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': `${OCI_MANIFEST}; charset=utf-8`, 'x-cache': 'PEER', 'x-cache-source': '12D3KooWpeer' }).end(
        body
      )
    }
    const answer = await registry().manifest(parseImageReference('ghcr.io/org/app:1.0'), '1.0')
    assert.deepEqual(answer, { body, digest: sha256(body), mediaType: OCI_MANIFEST, cache: 'PEER', source: '12D3KooWpeer' })
    assert.deepEqual(urls, ['/v2/org/app/manifests/1.0?ns=ghcr.io'])
  })

  it('a manifest larger than MAX_MANIFEST_BYTES is an unusable image', async () => {
    handle = (_req, res) => {
      res.writeHead(200).end(Buffer.alloc(MAX_MANIFEST_BYTES + 1))
    }
    await assert.rejects(
      registry().manifest(parseImageReference('app:1'), '1'),
      (err: unknown) => err instanceof UnusableImageError && err.message === `manifest 1 is larger than ${MAX_MANIFEST_BYTES} bytes`
    )
  })

  it('a blob is streamed to its end, counted as it comes, and kept only when asked', async () => {
    const blob = Buffer.alloc(3 * 1024 * 1024, 7)
    handle = (_req, res) => {
      res.writeHead(200, { 'x-cache': 'MISS', 'x-cache-source': 'upstream' }).end(blob)
    }
    const d: Descriptor = { mediaType: 'application/octet-stream', digest: sha256(blob), size: blob.byteLength }
    let counted = 0
    const answer = await registry().blob(parseImageReference('app:1'), d, false, n => {
      counted += n
    })
    assert.deepEqual(answer, { bytes: blob.byteLength, cache: 'MISS', source: 'upstream', body: undefined })
    assert.equal(counted, blob.byteLength)
    assert.deepEqual(urls, [`/v2/app/blobs/${d.digest}`])
  })

  it('an error answer is a SidecarAnswerError with the OCI code, the message and a hint', async () => {
    handle = (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' }).end(
        JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] })
      )
    }
    await assert.rejects(
      registry().manifest(parseImageReference('warm/missing:v1'), 'v1'),
      (err: unknown) =>
        err instanceof SidecarAnswerError && err.message === 'the sidecar answered 404 MANIFEST_UNKNOWN: manifest unknown' &&
        err.hint === "check that warm/missing:v1 exists on the sidecar's first upstream"
    )
  })

  it('a blob that takes longer than --timeout names the budget and how to raise it', async () => {
    handle = (_req, res) => {
      res.writeHead(200)
      res.write('partial')
    }
    const d: Descriptor = { mediaType: 'application/octet-stream', digest: `sha256:${'0'.repeat(64)}`, size: 100 }
    await assert.rejects(
      registry(200).blob(parseImageReference('app:1'), d, false, () => {}),
      (err: unknown) =>
        err instanceof Error &&
        err.message ===
          `no complete answer from the sidecar within 0.2 s for /v2/app/blobs/${d.digest}; raise --timeout for large layers on a slow link`
    )
  })

  it('probe(): a sidecar that is not there, or not a registry mirror, is SidecarUnreachableError (exit 2)', async () => {
    handle = (_req, res) => {
      res.writeHead(404).end()
    }
    await assert.rejects(
      registry().probe(),
      (err: unknown) =>
        err instanceof SidecarUnreachableError &&
        /^cannot reach a sidecar at http:\/\/127\.0\.0\.1:\d+ \(GET \/v2\/ answered 404: not a registry mirror\); is `p2p-cache serve` running/
          .test(err.message)
    )
    const closed = createServer()
    const port = await listenLocal(closed)
    await closeServer(closed)
    await assert.rejects(
      new SidecarRegistry(new SidecarClient(`http://127.0.0.1:${port}`)).probe(),
      (err: unknown) =>
        err instanceof SidecarUnreachableError &&
        /^cannot reach a sidecar at http:\/\/127\.0\.0\.1:\d+ .*is `p2p-cache serve` running/.test(err.message)
    )
    handle = (_req, res) => {
      res.writeHead(200).end('{}')
    }
    await registry().probe()
  })

  it('a refused request names the sidecar and the system error', async () => {
    const closed = createServer()
    const port = await listenLocal(closed)
    await closeServer(closed)
    const d: Descriptor = { mediaType: 'application/octet-stream', digest: `sha256:${'0'.repeat(64)}`, size: 1 }
    await assert.rejects(
      new SidecarRegistry(new SidecarClient(`http://127.0.0.1:${port}`)).blob(parseImageReference('app:1'), d, false, () => {}),
      (err: unknown) =>
        err instanceof Error &&
        err.message === `request to the sidecar at http://127.0.0.1:${port} failed (ECONNREFUSED): /v2/app/blobs/${d.digest}`
    )
  })
})
