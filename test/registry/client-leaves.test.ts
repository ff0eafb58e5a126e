import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, fetchBlob, pushBlob } from '../fixtures/swarm.js'
import { startThrottleProxy, type ThrottleProxy } from '../fixtures/throttle-proxy.js'
import { waitFor } from '../fixtures/wait.js'

const MiB = 1024 * 1024
const REPO = 'team/leave'

/** Reads the first bytes of a blob response, then hangs up: a client that goes away mid-pull. */
async function readSomeAndLeave (url: string): Promise<number> {
  const controller = new AbortController()
  const res = await fetch(url, { signal: controller.signal })
  assert.equal(res.status, 200)
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const first = await reader.read()
  controller.abort()
  return first.value?.byteLength ?? 0
}

/**
 * Issue 12, point 4: an AbortSignal reaches the download. A client that hangs up releases its
 * share without cancelling the download another client still reads; when the last one leaves,
 * the upstream transfer stops (after a short linger) and nothing is committed.
 */
describe('a client that leaves mid-download', function () {
  this.timeout(90_000)
  let registry: Registry
  let proxy: ThrottleProxy
  let sidecar: SidecarProcess

  before(async () => {
    registry = await startRegistry()
    // 4 MiB/s per connection: a 16 MiB blob takes about 4 s from the upstream.
    proxy = await startThrottleProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: 4 * MiB })
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${proxy.host}=${proxy.url}` })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await sidecar?.destroy()
    await proxy?.close()
    await registry?.destroy()
  })

  it('stops only its own share: the client that stays gets the whole verified blob from one upstream GET', async () => {
    const data = randomBytes(16 * MiB)
    const digest = await pushBlob(registry.url, REPO, data)
    const url = `${sidecar.url}/v2/${REPO}/blobs/${digest}`
    const staying = fetchBlob(url)
    await waitFor(() => proxy.bytesFor(digest) > 0, { timeoutMs: 10_000, what: 'the upstream download started' })
    assert.ok(await readSomeAndLeave(url) > 0)
    const got = await staying
    assert.equal(got.status, 200)
    assert.equal(got.digest, digest)
    assert.equal(proxy.requests().filter(r => r.includes(digest)).length, 1, 'one upstream GET for both clients')
  })

  it('the last client to leave stops the upstream transfer: nothing is committed, tmp/ is emptied', async () => {
    const data = randomBytes(32 * MiB)
    const digest = await pushBlob(registry.url, REPO, data)
    await readSomeAndLeave(`${sidecar.url}/v2/${REPO}/blobs/${digest}`)
    // The download lingers a few seconds for a client that comes back, then stops.
    await waitFor(async () => (await readdir(join(sidecar.env.CACHE_DIR ?? '', 'tmp'))).length === 0, {
      timeoutMs: 20_000,
      what: 'the temporary file removed'
    })
    const passed = proxy.bytesFor(digest)
    assert.ok(passed < data.length, `the upstream transfer stopped early (${passed} of ${data.length} bytes passed)`)
    const res = await fetch(`${sidecar.url}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD' })
    assert.equal(res.headers.get('x-cache'), 'MISS', 'nothing was committed')
  })
})
