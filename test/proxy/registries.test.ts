import assert from 'node:assert/strict'
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { bridge, Netns, netnsUnavailable, veth } from '../fixtures/netns.js'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage, randomLayer, type ImageDescription } from '../fixtures/oci-image.js'
import { layoutBlobDigests, pushLayout, skopeoCopy } from '../fixtures/skopeo.js'
import { makeTestPki, type TestPki } from '../fixtures/test-pki.js'
import { startHerd, type Herd, type HerdNode } from '../fixtures/herd.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'
import { startDockerd, DOCKERD_BIN } from '../fixtures/dockerd.js'
import type { ManagedProcess } from '../fixtures/child.js'
import { waitFor } from '../fixtures/wait.js'
import { startCdnFront, type CdnFront } from '../fixtures/cdn-front.js'
import { skipUnlessCi } from '../fixtures/skip.js'

/**
 * Issue 24, registries through the forward proxy, with real names over TLS: the Debian
 * docker-registry serves `ghcr.io`, `registry-1.docker.io` and `quay.io` (a private one, Basic
 * auth) in a namespace of its own, with certificates from a test CA; two runner namespaces map
 * those names to it in /etc/netns/<ns>/hosts and run a sidecar each with CACHE_PROXY_ADDR.
 * Clients (skopeo, dockerd) use HTTPS_PROXY and trust only the sidecar's CA (SSL_CERT_FILE), so
 * a byte that did not come through the proxy could not be read. Nothing leaves the namespaces.
 *
 *   lan: br0 ── r1 10.78.0.1 (sidecar, clients)
 *            ├── r2 10.78.0.2 (sidecar, clients)
 *            └── reg 10.78.0.100 ghcr.io, .101 registry-1.docker.io, .102 quay.io,
 *                .103 registry.npmjs.org (verdaccio), .104 mcr.microsoft.com (Basic auth, blobs
 *                redirected to .105 cdn.test; CACHE_REGISTRY_AUTH holds the fleet's credential)
 *
 * The runners share a swarm key: URL records of package downloads are shared inside it.
 */
const GHCR = '10.78.0.100'
const HUB = '10.78.0.101'
const QUAY = '10.78.0.102'
const NPM = '10.78.0.103'
const MCR = '10.78.0.104'
const CDN = '10.78.0.105'
const FRONT = { user: 'fleet', password: 'fleet-secret' }
const VERDACCIO_BIN = join(dirname(fileURLToPath(import.meta.url)), '../../node_modules/verdaccio/bin/verdaccio')
const PACKAGE = 'p2pc-demo'
const PROXY = 'http://127.0.0.1:3128'
const ALICE = { user: 'alice', password: 'alice-secret' }

describe('registries through the forward proxy (real names over TLS, two runners)', function () {
  this.timeout(300_000)
  const made: Netns[] = []
  let work: string
  let pki: TestPki
  let ghcr: Registry
  let hub: Registry
  let quay: Registry
  let herd: Herd | undefined
  let r1: HerdNode
  let r2: HerdNode
  let app: ImageDescription
  let library: ImageDescription
  let secret: ImageDescription
  let dotnet: ImageDescription
  let verdaccio: Verdaccio | undefined
  let cdn: CdnFront | undefined
  /** The sidecars' CA, per runner (each makes its own). */
  const caFile = new Map<string, string>()

  before(async function () {
    const why = await netnsUnavailable() ??
      await access('/usr/bin/skopeo').then(() => undefined, () => 'skopeo is missing (scripts/install-test-deps.sh installs it)')
    if (why !== undefined) {
      skipUnlessCi(this, why)
      return
    }
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-proxy-registries-'))
    pki = await makeTestPki(work, [
      'DNS:ghcr.io',
      'DNS:registry-1.docker.io',
      'DNS:quay.io',
      'DNS:registry.npmjs.org',
      'DNS:mcr.microsoft.com',
      'DNS:cdn.test',
      `IP:${GHCR}`,
      `IP:${HUB}`,
      `IP:${QUAY}`,
      `IP:${NPM}`
    ], 'registries')
    const ns = async (prefix: string): Promise<Netns> => {
      const n = await Netns.create(prefix)
      made.push(n)
      return n
    }
    const lan = await ns('p2pc-plan')
    const reg = await ns('p2pc-preg')
    const hosts = [await ns('p2pc-pr1'), await ns('p2pc-pr2')]
    await veth(lan, 'preg', undefined, reg, 'eth0', `${GHCR}/24`)
    await reg.must('ip', ['addr', 'add', `${HUB}/24`, 'dev', 'eth0'])
    await reg.must('ip', ['addr', 'add', `${QUAY}/24`, 'dev', 'eth0'])
    for (const ip of [NPM, MCR, CDN]) await reg.must('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    for (const [i, h] of hosts.entries()) {
      await veth(lan, `pr${i + 1}`, undefined, h, 'eth0', `10.78.0.${i + 1}/24`)
      // The real names, resolved from files only: no lookup leaves the namespace.
      await h.etc(
        'hosts',
        `127.0.0.1 localhost\n${GHCR} ghcr.io\n${HUB} registry-1.docker.io\n${QUAY} quay.io\n${NPM} registry.npmjs.org\n${MCR} mcr.microsoft.com\n${CDN} cdn.test\n`
      )
      await h.etc('resolv.conf', 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
    }
    await bridge(lan, 'br0', undefined, ['preg', 'pr1', 'pr2'])
    const tls = { certFile: pki.certFile, keyFile: pki.keyFile, caFile: pki.caFile }
    ;[ghcr, hub, quay] = await Promise.all([
      startRegistry({ netns: reg, listenHost: GHCR, port: 443, tls }),
      startRegistry({ netns: reg, listenHost: HUB, port: 443, tls }),
      startRegistry({ netns: reg, listenHost: QUAY, port: 443, tls, auth: { htpasswd: ALICE } })
    ])
    // Two images that share their base layer, on two registries; a private one on quay.io.
    const base = randomLayer(512 * 1024)
    app = await buildImage(join(work, 'app'), { tag: '1', baseLayers: [base], layers: 1, layerSize: 256 * 1024 })
    library = await buildImage(join(work, 'library'), { tag: '1', baseLayers: [base], layers: 1, layerSize: 128 * 1024 })
    secret = await buildImage(join(work, 'secret'), { tag: '1', layers: 1, layerSize: 64 * 1024 })
    dotnet = await buildImage(join(work, 'dotnet'), { tag: '1', layers: 2, layerSize: 96 * 1024 })
    await pushLayout(join(work, 'app'), '1', `${GHCR}:443`, 'org/app', { netns: reg.name })
    await pushLayout(join(work, 'library'), '1', `${HUB}:443`, 'library/app', { netns: reg.name })
    // mcr.microsoft.com's front relays to this registry, its blobs through the CDN.
    await pushLayout(join(work, 'dotnet'), '1', `${GHCR}:443`, 'dotnet/runtime', { netns: reg.name })
    await pushLayout(join(work, 'secret'), '1', `${QUAY}:443`, 'team/secret', { netns: reg.name, creds: ALICE })
    verdaccio = await startVerdaccio(reg, join(work, 'verdaccio'), pki)
    cdn = await startCdnFront(reg, {
      frontIp: MCR,
      cdnIp: CDN,
      cdnName: 'cdn.test',
      upstream: `https://${GHCR}`,
      caFile: pki.caFile,
      certFile: pki.certFile,
      keyFile: pki.keyFile,
      ...FRONT
    })
    herd = await startHerd({
      hosts: hosts.map((h, i) => ({ name: `r${i + 1}`, ns: h, ip: `10.78.0.${i + 1}` })),
      bootstrapToFirst: true,
      env: {
        CACHE_PROXY_ADDR: '127.0.0.1:3128',
        CACHE_UPSTREAM_CA_FILE: pki.caFile,
        CACHE_SWARM_KEY: randomBytes(32).toString('hex'),
        CACHE_REGISTRY_AUTH: `mcr.microsoft.com=${FRONT.user}:${FRONT.password}`,
        CACHE_LOG_LEVEL: 'debug'
      }
    })
    ;[r1, r2] = herd.nodes as [HerdNode, HerdNode]
    for (const node of herd.nodes) {
      const r = await node.netns?.must('curl', ['-sS', '--max-time', '5', `${node.url}/ca.crt`]) ?? ''
      assert.match(r, /BEGIN CERTIFICATE/)
      const file = join(work, `${node.name}-ca.crt`)
      await writeFile(file, r)
      caFile.set(node.name, file)
    }
    for (const r of [ghcr, hub, quay]) {
      await r.settled()
      r.clearRequests()
    }
  })

  afterEach(function () {
    dumpLogsIfFailed(this, Object.fromEntries((herd?.nodes ?? []).map(n => [n.name, n])))
  })

  after(async () => {
    await herd?.destroy()
    await verdaccio?.proc.stop()
    await cdn?.proc.stop()
    await Promise.all([ghcr, hub, quay].map(async r => {
      await r?.destroy()
    }))
    for (const n of made.reverse()) await n.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  /** skopeo copy of `ref` on a runner through its proxy, trusting only its sidecar's CA. */
  const pull = async (node: HerdNode, ref: string, out: string, creds?: { user: string, password: string }): Promise<void> => {
    await skopeoCopy(`docker://${ref}`, `oci:${out}:x`, {
      netns: node.netns?.name,
      env: { HTTPS_PROXY: PROXY, SSL_CERT_FILE: caFile.get(node.name) },
      ...(creds !== undefined ? { srcCreds: creds } : {}),
      timeoutMs: 60_000
    })
  }
  const blobGets = async (r: Registry, digest: string): Promise<number> => {
    await r.settled()
    return r.count({ method: 'GET', pathIncludes: `/blobs/${digest}` })
  }

  it('skopeo pulls ghcr.io and Docker Hub images through the proxy; a layer the two share is fetched once, by digest', async () => {
    const outA = join(work, 'pull-a')
    const outB = join(work, 'pull-b')
    await pull(r1, 'ghcr.io/org/app:1', outA)
    await pull(r1, 'docker.io/library/app:1', outB)
    assert.deepEqual(new Set(await layoutBlobDigests(outA)), new Set(app.allBlobDigests))
    assert.deepEqual(new Set(await layoutBlobDigests(outB)), new Set(library.allBlobDigests))
    const base = app.layers[0]?.digest as string
    assert.equal(library.layers[0]?.digest, base)
    assert.equal(await blobGets(ghcr, base) + await blobGets(hub, base), 1, 'the shared base layer is fetched from one registry only')
    const stats = await r1.stats()
    assert.ok((stats.proxy_requests ?? 0) > 0)
    assert.ok((stats.bytes_served ?? 0) >= 512 * 1024, 'the mirror machinery served the pulls')
  })

  it("the second runner's pull of the same ghcr.io image comes from the first runner, verified", async () => {
    const out = join(work, 'pull-r2')
    await pull(r2, 'ghcr.io/org/app:1', out)
    assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(app.allBlobDigests))
    for (const layer of app.layers) {
      assert.equal(await blobGets(ghcr, layer.digest), 1, `layer ${layer.digest} was fetched upstream once in all`)
    }
    const stats = await r2.stats()
    assert.ok((stats.bytes_from_peers ?? 0) >= 512 * 1024, `r2 took the layers from r1 (stats ${JSON.stringify(stats)})`)
  })

  it("a registry that redirects blobs to a CDN, with the fleet's CACHE_REGISTRY_AUTH: the sidecar follows the redirects without the Authorization, the client never sees them", async () => {
    const out = join(work, 'pull-mcr')
    await pull(r1, 'mcr.microsoft.com/dotnet/runtime:1', out)
    assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(dotnet.allBlobDigests))
    const gets = cdn?.cdnGets()
    assert.ok((gets?.all ?? 0) > 0, 'blobs came from the CDN')
    assert.equal(gets?.withAuthorization, 0, "the registry's credential never went to the CDN")
    assert.ok(
      !r1.logs().some(l => l.includes('"proxied request"') && l.includes('"host":"cdn.test"')),
      'the client never went to the CDN itself'
    )
  })

  it('a private repository cached for credential A is served to A from the private store, and refused to credential B and to anonymous clients', async () => {
    const out = join(work, 'pull-secret')
    await quay.settled()
    quay.clearRequests()
    await pull(r1, 'quay.io/team/secret:1', out, ALICE)
    assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(secret.allBlobDigests))
    await quay.settled()
    assert.ok(quay.count({ method: 'HEAD', kind: 'blob' }) > 0, 'the registry confirmed A may read each blob (authorized HEADs)')
    quay.clearRequests()
    await pull(r1, 'quay.io/team/secret:1', join(work, 'pull-secret-again'), ALICE)
    await quay.settled()
    assert.equal(quay.count({ method: 'GET', kind: 'blob' }), 0, "A's second pull read the blobs from the private store")
    assert.equal(quay.count({ method: 'HEAD', kind: 'blob' }), 0, "A's confirmation is remembered for a while")
    assert.ok(r1.logs().some(l => l.includes('"host":"quay.io"') && l.includes('"cache":"HIT"')))
    await assert.rejects(
      pull(r1, 'quay.io/team/secret:1', join(work, 'pull-secret-b'), { user: 'bob', password: 'guess' }),
      /unauthorized|authentication required|401/i
    )
    await assert.rejects(pull(r1, 'quay.io/team/secret:1', join(work, 'pull-secret-anon')), /unauthorized|authentication required|401/i)
    // Asked for by digest, past the manifest: the cached layer is still refused to B and to anonymous.
    const layer = secret.layers[0]?.digest as string
    for (const auth of [['-u', 'bob:guess'], []]) {
      const r = await r1.netns?.run('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--max-time',
        '10',
        '--proxy',
        PROXY,
        '--cacert',
        caFile.get('r1') ?? '',
        ...auth,
        `https://quay.io/v2/team/secret/blobs/${layer}`
      ])
      assert.equal(r?.stdout, '401', `a cached private layer asked for ${auth.length === 0 ? 'anonymously' : 'as bob'}`)
    }
    // Kept apart: not in the shared store, never announced to peers.
    for (const digest of secret.allBlobDigests) {
      const hex = digest.slice('sha256:'.length)
      assert.equal(
        await access(join(r1.dir, 'data', 'blobs', 'sha256', hex.slice(0, 2), hex)).then(() => true, () => false),
        false,
        `${digest} is not in the shared store`
      )
      assert.ok(!r1.logs().some(l => l.includes(digest) && l.includes('"msg":"announced"')), `${digest} was not announced`)
    }
    assert.ok(
      await access(join(r1.dir, 'data', 'private', 'blobs', 'sha256', layer.slice(7, 9), layer.slice(7))).then(() => true, () => false),
      'the layer is in the private store'
    )
    await pull(r2, 'quay.io/team/secret:1', join(work, 'pull-secret-r2'), ALICE)
  })

  it("a client that does not trust the sidecar's CA gets an x509 error naming the certificate", async () => {
    await assert.rejects(
      skopeoCopy('docker://ghcr.io/org/app:1', `oci:${join(work, 'untrusted')}:x`, {
        netns: r1.netns?.name,
        env: { HTTPS_PROXY: PROXY, SSL_CERT_FILE: pki.caFile }
      }),
      /x509: certificate signed by unknown authority/
    )
  })

  it('npm installs through the proxy: the tarball is stored by digest, a fresh npm cache is a hit, and the other runner gets it from this one', async () => {
    const install = async (node: HerdNode, label: string): Promise<void> => {
      const dir = join(work, `npm-${label}`)
      await mkdir(dir, { recursive: true })
      const r = await node.netns?.run('npm', [
        'install',
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        '--fetch-retries',
        '0',
        '--prefix',
        dir,
        '--cache',
        join(dir, '.npm-cache'),
        '--registry',
        'https://registry.npmjs.org/',
        '--cafile',
        caFile.get(node.name) ?? '',
        PACKAGE
      ], {
        env: { PATH: process.env.PATH, HOME: dir, HTTPS_PROXY: PROXY },
        timeoutMs: 90_000
      })
      assert.equal(r?.code, 0, `npm install on ${node.name}: ${r?.stdout ?? ''}${r?.stderr ?? ''}`)
      assert.match(await readFile(join(dir, 'node_modules', PACKAGE, 'index.js'), 'utf8'), /p2p-cache demo/)
    }
    await install(r1, 'r1-first')
    await install(r1, 'r1-again')
    await verdaccio?.settled()
    assert.equal(verdaccio?.tarballGets(), 1, 'the tarball left verdaccio once for two installs with empty npm caches')
    const logs = r1.logs().filter(l => l.includes(`/${PACKAGE}/-/`) && l.includes('proxied request'))
    assert.match(logs.at(-1) ?? '', /"cache":"HIT"/)
    // The other runner's job comes later, once r1 announced the URL record (when it was quiet).
    await waitFor(
      () => r1.logs().some(l => l.includes(`"key":"rec:url https://registry.npmjs.org/${PACKAGE}/-/`) && l.includes('"msg":"announced"')),
      { timeoutMs: 40_000, what: 'r1 to announce the URL record' }
    )
    await install(r2, 'r2')
    await verdaccio?.settled()
    assert.equal(verdaccio?.tarballGets(), 1, 'r2 took the tarball from r1 (its URL record shared inside the swarm key)')
    assert.ok(r2.logs().some(l => l.includes(`/${PACKAGE}/-/`) && l.includes('"cache":"PEER"')), 'r2 served it from a peer')
  })

  it('while ghcr.io is down, a pull by tag through the proxy is served from the cache (the API check answered here, the tag served stale)', async () => {
    await ghcr.stop()
    try {
      const out = join(work, 'pull-down')
      await pull(r1, 'ghcr.io/org/app:1', out)
      assert.deepEqual(new Set(await layoutBlobDigests(out)), new Set(app.allBlobDigests))
      assert.ok(r1.logs().some(l => l.includes('registry unreachable') && l.includes('"host":"ghcr.io"')))
    } finally {
      await ghcr.start()
    }
  })

  it('podman with HTTPS_PROXY pulls from ghcr.io through the proxy (the runner already holds the image: served from its store)', async function () {
    if (await access('/usr/bin/podman').then(() => false, () => true)) {
      skipUnlessCi(this, '/usr/bin/podman is missing (scripts/install-test-deps.sh installs it)')
      return
    }
    const root = join(work, 'podman')
    await mkdir(root, { recursive: true })
    await writeFile(join(root, 'registries.conf'), '')
    const r = await r2.netns?.run('podman', [
      '--root',
      join(root, 'storage'),
      '--runroot',
      join(root, 'run'),
      '--storage-driver',
      'vfs',
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'none',
      'pull',
      '--quiet',
      'ghcr.io/org/app:1'
    ], {
      env: {
        PATH: process.env.PATH,
        HOME: root,
        XDG_RUNTIME_DIR: root,
        TMPDIR: root,
        CONTAINERS_REGISTRIES_CONF: join(root, 'registries.conf'),
        HTTPS_PROXY: PROXY,
        SSL_CERT_FILE: caFile.get('r2')
      },
      timeoutMs: 120_000
    })
    assert.equal(r?.code, 0, `podman pull: ${r?.stdout ?? ''}${r?.stderr ?? ''}`)
    const blobs = r2.logs().filter(l => l.includes('"proxied request"') && l.includes('"host":"ghcr.io"') && l.includes('/blobs/'))
    assert.ok(
      blobs.length > 0 && blobs.slice(-app.layers.length).every(l => l.includes('"cache":"HIT"')),
      `podman's blob requests were answered from r2's store:\n${blobs.slice(-4).join('\n')}`
    )
  })

  it('dockerd 20.10 with HTTPS_PROXY pulls from ghcr.io and Docker Hub through the proxy', async function () {
    if (await access(DOCKERD_BIN).then(() => false, () => true)) {
      skipUnlessCi(this, `${DOCKERD_BIN} is missing (scripts/install-test-deps.sh installs docker.io)`)
      return
    }
    const ns = r2.netns as Netns
    const dockerd = await startDockerd(ns, {}, { HTTPS_PROXY: PROXY, SSL_CERT_FILE: caFile.get('r2') })
    try {
      for (const ref of ['ghcr.io/org/app:1', 'app:1']) {
        const r = await dockerd.docker(['pull', ref])
        assert.equal(r.code, 0, `docker pull ${ref}: ${r.stdout}${r.stderr}\n${dockerd.tail()}`)
      }
      const stats = await r2.stats()
      assert.ok((stats.hits ?? 0) > 0, 'r2 served what it had from its store')
      const base = app.layers[0]?.digest as string
      assert.equal(await blobGets(ghcr, base) + await blobGets(hub, base), 1)
    } finally {
      await dockerd.destroy()
    }
  })
})

/**
 * verdaccio (an npm registry) inside `ns` on https://NPM:443 with the test PKI, holding one
 * package published by `npm publish` as a user it registered. Its http log lines are counted
 * for tarball downloads.
 */
interface Verdaccio {
  proc: ManagedProcess
  /** Tarball downloads verdaccio answered with a body (its `http <--` lines). */
  tarballGets: () => number
  /** Resolves once every request answered before the call is counted (verdaccio's log is buffered). */
  settled: () => Promise<void>
}

async function startVerdaccio (ns: Netns, dir: string, pki: TestPki): Promise<Verdaccio> {
  await mkdir(join(dir, 'pkg'), { recursive: true })
  await writeFile(
    join(dir, 'config.yaml'),
    [
      `storage: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      '    max_users: 10',
      'uplinks: {}',
      'packages:',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      'https:',
      `  key: ${pki.keyFile}`,
      `  cert: ${pki.certFile}`,
      'log: { type: stdout, format: pretty, level: http }',
      ''
    ].join('\n')
  )
  let gets = 0
  const marks = new Set<string>()
  const proc = ns.spawn(process.execPath, [VERDACCIO_BIN, '--config', join(dir, 'config.yaml'), '--listen', `https://${NPM}:443`], {
    env: { PATH: process.env.PATH, HOME: dir },
    onLine: line => {
      if (!line.includes('http <--')) return
      // Two lines per request: as it comes (bytes 0/0) and once answered (bytes in/out).
      if (line.includes(`GET /${PACKAGE}/-/`) && /bytes: \d+\/[1-9]/.test(line)) gets++
      const mark = /settle-([0-9a-f]+)/.exec(line)?.[1]
      if (mark !== undefined) marks.add(mark)
    }
  })
  const curl = async (args: string[]): Promise<string> => await ns.must('curl', ['-sS', '--max-time', '5', '--cacert', pki.caFile, ...args])
  try {
    await publish()
  } catch (err) {
    // Not returned to the caller: stopped here, or it outlives the test.
    await proc.stop()
    throw err
  }
  return {
    proc,
    tarballGets: () => gets,
    settled: async () => {
      // A request sent now is logged after every one answered before it.
      const mark = randomBytes(6).toString('hex')
      await ns.run('curl', ['-s', '-o', '/dev/null', '--max-time', '5', '--cacert', pki.caFile, `https://${NPM}/-/ping?settle-${mark}`])
      await waitFor(() => marks.has(mark), { timeoutMs: 15_000, what: 'verdaccio to log the settle request' })
    }
  }

  async function publish (): Promise<void> {
    await waitFor(async () => {
      if (!proc.isRunning()) throw new Error(`verdaccio exited: ${proc.tail(20)}`)
      return (await ns.run('curl', ['-s', '-o', '/dev/null', '--max-time', '2', '--cacert', pki.caFile, `https://${NPM}/-/ping`])).code ===
        0
    }, { timeoutMs: 30_000, what: 'verdaccio to answer' })
    const added = JSON.parse(
      await curl([
        '-X',
        'PUT',
        '-H',
        'content-type: application/json',
        '-d',
        JSON.stringify({ name: 'publisher', password: 'publisher-secret' }),
        `https://${NPM}/-/user/org.couchdb.user:publisher`
      ])
    ) as { token?: string }
    if (added.token === undefined) throw new Error(`verdaccio did not register the publisher: ${JSON.stringify(added)}`)
    await writeFile(join(dir, 'pkg', 'package.json'), JSON.stringify({ name: PACKAGE, version: '1.0.0', main: 'index.js' }))
    await writeFile(join(dir, 'pkg', 'index.js'), `module.exports = 'p2p-cache demo ${randomBytes(64 * 1024).toString('hex')}'\n`)
    await writeFile(join(dir, 'npmrc'), `//${NPM}/:_authToken=${added.token}\n`)
    // npm trusts its own `cafile`, not NODE_EXTRA_CA_CERTS.
    const published = await ns.run('npm', [
      'publish',
      '--registry',
      `https://${NPM}/`,
      '--userconfig',
      join(dir, 'npmrc'),
      '--cafile',
      pki.caFile,
      '--fetch-retries',
      '0',
      join(dir, 'pkg')
    ], {
      env: { PATH: process.env.PATH, HOME: dir },
      timeoutMs: 60_000
    })
    if (published.code !== 0) throw new Error(`npm publish: ${published.stdout}${published.stderr}`)
  }
}
