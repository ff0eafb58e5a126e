import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { pushBlob } from '../fixtures/swarm.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { makeTestPki, type TestPki } from '../fixtures/test-pki.js'

const REPO = 'tls/app'

/**
 * An upstream registry over TLS with a private CA (the CNCF registry, `http.tls`):
 * CACHE_UPSTREAM_CA_FILE makes the mirror trust it besides the system roots; without it the
 * certificate is refused and the client gets the mirror's 502, never unverified bytes.
 */
describe('an upstream registry with a private CA (CACHE_UPSTREAM_CA_FILE)', function () {
  this.timeout(60_000)
  let dir: string
  let registry: Registry
  let pki: TestPki
  const sidecars: SidecarProcess[] = []
  const body = randomBytes(200_000)
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'upstream-tls-'))
    pki = await makeTestPki(dir, ['IP:127.0.0.1'], 'registry')
    // The blob is pushed over plain HTTP, then the same storage is served over TLS.
    const plain = await startRegistry({ dataDir: join(dir, 'data') })
    await pushBlob(plain.url, REPO, body)
    await plain.destroy()
    registry = await startRegistry({ dataDir: join(dir, 'data'), tls: pki })
  })

  after(async () => {
    for (const s of sidecars) await s.destroy()
    await registry?.destroy()
    await rm(dir, { recursive: true, force: true })
  })

  it('with the CA file the blob comes through verified; without it the client gets 502 naming the certificate', async () => {
    assert.match(registry.url, /^https:/)
    const trusting = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `private=${registry.url}`, CACHE_UPSTREAM_CA_FILE: pki.caFile })
    sidecars.push(trusting)
    const res = await fetch(`${trusting.url}/v2/${REPO}/blobs/${digest}`)
    const got = Buffer.from(await res.arrayBuffer())
    assert.equal(res.status, 200)
    assert.equal(`sha256:${createHash('sha256').update(got).digest('hex')}`, digest)

    const plain = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `private=${registry.url}` })
    sidecars.push(plain)
    const refused = await fetch(`${plain.url}/v2/${REPO}/blobs/${digest}`)
    const text = await refused.text()
    assert.equal(refused.status, 502, text)
    assert.match(text, /certificate|issuer/i)
  })
})
