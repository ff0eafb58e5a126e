import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HTPASSWD_REALM, startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, type ImageDescription } from '../fixtures/oci-image.js'
import { pushLayout, pullToLayout, layoutBlobDigests, type Credentials } from '../fixtures/skopeo.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { startTokenServer, type TokenServer } from '../fixtures/token-server.js'

const USER = 'ci-bot'
// Distinctive, so a leak into any log line is unmistakable.
const SECRET = `s3cr3t-${randomBytes(12).toString('hex')}`
const WRONG = `wr0ng-${randomBytes(12).toString('hex')}`
const CREDS: Credentials = { user: USER, password: SECRET }
const basic64 = (user: string, password: string): string => Buffer.from(`${user}:${password}`).toString('base64')

interface OciErrorBody {
  errors?: Array<{ code?: string, message?: string }>
}

describe('upstream auth (docker-registry with token or htpasswd auth, skopeo client)', function () {
  this.timeout(60_000)
  let work: string
  let tokens: TokenServer
  let registry: Registry
  let basicRegistry: Registry
  let app: ImageDescription
  const sidecars: SidecarProcess[] = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-auth-'))
    tokens = await startTokenServer({ users: { [USER]: SECRET } })
    ;[registry, basicRegistry] = await Promise.all([
      startRegistry({ auth: tokens.registryAuth }),
      startRegistry({ auth: { htpasswd: { user: USER, password: SECRET } } })
    ])
    app = await buildImage(join(work, 'app'), { tag: 'v1', layers: 2, layerSize: 32 * 1024 })
    await Promise.all([
      pushLayout(join(work, 'app'), 'v1', registry.host, 'team/app', { creds: CREDS }),
      pushLayout(join(work, 'app'), 'v1', basicRegistry.host, 'team/app', { creds: CREDS })
    ])
    await Promise.all([registry.settled(), basicRegistry.settled()])
    registry.clearRequests()
    basicRegistry.clearRequests()
    tokens.clearRequests()
  })

  after(async () => {
    const results = await Promise.allSettled([
      ...sidecars.map(async s => {
        await s.destroy()
      }),
      registry?.destroy(),
      basicRegistry?.destroy(),
      tokens?.close()
    ])
    await rm(work, { recursive: true, force: true })
    for (const r of results) if (r.status === 'rejected') throw r.reason
  })

  async function sidecarFor (upstream: Registry, env: NodeJS.ProcessEnv = {}): Promise<SidecarProcess> {
    const s = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${upstream.host}=${upstream.url}`, ...env })
    sidecars.push(s)
    return s
  }

  async function pullVerified (sidecar: SidecarProcess, repo: string, tag: string): Promise<string[]> {
    const out = await mkdtemp(join(work, 'pull-'))
    await pullToLayout(sidecar.host, repo, tag, out, { timeoutMs: 20_000 })
    return await layoutBlobDigests(out)
  }

  /** The sidecar refuses like the upstream (401/403 with an OCI error body), neither 5xx nor a hang. */
  async function assertRefused (sidecar: SidecarProcess): Promise<void> {
    const paths = [`/v2/team/app/manifests/v1`, `/v2/team/app/manifests/${app.manifestDigest}`, `/v2/team/app/blobs/${app.configDigest}`]
    for (const path of paths) {
      const res = await fetch(`${sidecar.url}${path}`, { signal: AbortSignal.timeout(10_000) })
      const text = await res.text()
      assert.ok(res.status === 401 || res.status === 403, `GET ${path}: ${res.status} ${text}`)
      const body = JSON.parse(text) as OciErrorBody
      assert.match(body.errors?.[0]?.code ?? '', /^(UNAUTHORIZED|DENIED)$/, text)
    }
    const out = await mkdtemp(join(work, 'refused-'))
    await assert.rejects(pullToLayout(sidecar.host, 'team/app', 'v1', out, { timeoutMs: 20_000 }), (err: Error) => {
      assert.match(err.message, /unauthorized|denied|authentication required|401|403/i)
      assert.doesNotMatch(err.message, /killed after|answered 50[0-9]|status 50[0-9]|UPSTREAM_UNAVAILABLE/)
      return true
    })
  }

  it('the fixtures really protect the upstreams', async () => {
    const bearer = await fetch(`${registry.url}/v2/team/app/manifests/v1`, { signal: AbortSignal.timeout(5_000) })
    assert.equal(bearer.status, 401)
    assert.match(
      bearer.headers.get('www-authenticate') ?? '',
      /^Bearer realm="[^"]+\/token",service="[^"]+",scope="repository:team\/app:pull"/
    )
    const basic = await fetch(`${basicRegistry.url}/v2/team/app/manifests/v1`, { signal: AbortSignal.timeout(5_000) })
    assert.equal(basic.status, 401)
    assert.equal(basic.headers.get('www-authenticate'), `Basic realm="${HTPASSWD_REALM}"`)
    await Promise.all([bearer.body?.cancel(), basic.body?.cancel()])
  })

  it('token auth: CACHE_REGISTRY_AUTH credentials go to the token server; one token serves the whole pull', async () => {
    await registry.settled()
    registry.clearRequests()
    tokens.clearRequests()
    const sidecar = await sidecarFor(registry, { CACHE_REGISTRY_AUTH: `${registry.host}=${USER}:${SECRET}` })
    const got = await pullVerified(sidecar, 'team/app', 'v1')
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))

    // skopeo only talks to the sidecar: every token request is the sidecar's.
    const reqs = tokens.requests()
    assert.equal(reqs.length, 1, JSON.stringify(reqs))
    const [req] = reqs
    assert.equal(req?.status, 200)
    assert.equal(req?.basic, true)
    assert.equal(req?.user, USER)
    assert.equal(req?.service, tokens.service)
    assert.deepEqual(req?.scopes, ['repository:team/app:pull'])
    assert.deepEqual(req?.granted, [{ type: 'repository', name: 'team/app', actions: ['pull'] }])
    assert.match(req?.userAgent ?? '', /^p2p-cache\//)

    await registry.settled()
    // One challenge, then the cached token on every request: manifest HEAD + GET, config, layers.
    assert.equal(registry.count({ status: 401 }), 1, JSON.stringify(registry.requests()))
    const answered = registry.requests().filter(r => r.status >= 200 && r.status < 300)
    assert.ok(answered.length >= 2 + 1 + app.layers.length, JSON.stringify(registry.requests()))
    assert.equal(registry.count({ kind: 'blob', method: 'GET', status: 200 }), 1 + app.layers.length)
    assert.ok(tokens.count() < answered.length)
  })

  it('token auth: credentials from a docker config.json (CACHE_DOCKER_CONFIG)', async () => {
    await registry.settled()
    registry.clearRequests()
    tokens.clearRequests()
    const configPath = join(work, 'docker-config.json')
    await writeFile(configPath, JSON.stringify({ auths: { [registry.host]: { auth: basic64(USER, SECRET) } } }))
    const sidecar = await sidecarFor(registry, { CACHE_DOCKER_CONFIG: configPath })
    const got = await pullVerified(sidecar, 'team/app', 'v1')
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
    assert.equal(tokens.count(), 1, JSON.stringify(tokens.requests()))
    assert.equal(tokens.count({ basic: true, user: USER, status: 200 }), 1)
    await registry.settled()
    assert.equal(registry.count({ status: 401 }), 1, JSON.stringify(registry.requests()))
    assert.equal(registry.count({ kind: 'blob', method: 'GET', status: 200 }), 1 + app.layers.length)
  })

  it('token auth without credentials: the upstream refusal reaches the client as 401/403', async () => {
    tokens.clearRequests()
    const sidecar = await sidecarFor(registry)
    await assertRefused(sidecar)
    assert.ok(tokens.count({ basic: false }) >= 1, 'the sidecar asked for an anonymous token')
    assert.equal(tokens.count({ basic: true }), 0)
  })

  it('token auth with a wrong password: refused by the token server, 401/403 to the client', async () => {
    tokens.clearRequests()
    const sidecar = await sidecarFor(registry, { CACHE_REGISTRY_AUTH: `${registry.host}=${USER}:${WRONG}` })
    await assertRefused(sidecar)
    assert.ok(tokens.count({ basic: true, user: USER, status: 401 }) >= 1, JSON.stringify(tokens.requests()))
    assert.equal(tokens.count({ status: 200 }), 0)
  })

  it('basic auth (htpasswd): CACHE_REGISTRY_AUTH credentials are sent, after the first challenge up front', async () => {
    await basicRegistry.settled()
    basicRegistry.clearRequests()
    const sidecar = await sidecarFor(basicRegistry, { CACHE_REGISTRY_AUTH: `${basicRegistry.host}=${USER}:${SECRET}` })
    const got = await pullVerified(sidecar, 'team/app', 'v1')
    assert.deepEqual(new Set(got), new Set(app.allBlobDigests))
    await basicRegistry.settled()
    assert.equal(basicRegistry.count({ status: 401 }), 1, JSON.stringify(basicRegistry.requests()))
    assert.equal(basicRegistry.count({ kind: 'blob', method: 'GET', status: 200 }), 1 + app.layers.length)
  })

  it('basic auth (htpasswd) without or with wrong credentials: 401/403 to the client', async () => {
    await assertRefused(await sidecarFor(basicRegistry))
    await assertRefused(await sidecarFor(basicRegistry, { CACHE_REGISTRY_AUTH: `${basicRegistry.host}=${USER}:${WRONG}` }))
  })

  it('no secret, encoded credential or issued token appears in any sidecar log', () => {
    assert.ok(sidecars.length >= 6)
    const secrets = [SECRET, WRONG, basic64(USER, SECRET), basic64(USER, WRONG), ...tokens.issuedTokens()]
    for (const [i, s] of sidecars.entries()) {
      const lines = s.logs()
      assert.ok(lines.length > 0, `sidecar ${i} logged nothing (debug level expected)`)
      for (const line of lines) {
        for (const secret of secrets) assert.ok(!line.includes(secret), `sidecar ${i} logged a secret: ${line.slice(0, 300)}`)
      }
    }
  })
})
