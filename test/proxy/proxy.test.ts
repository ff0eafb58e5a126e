import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'
import { makeTestPki, type TestPki } from '../fixtures/test-pki.js'

/** Sends `request` to the proxy as raw bytes and returns all it answers until it closes. */
async function rawConnect (port: number, request: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(request)
    })
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      text += d
    })
    socket.on('end', () => {
      resolve(text)
    })
    socket.on('error', reject)
    socket.setTimeout(10_000, () => {
      socket.destroy(new Error(`no answer; got ${text}`))
    })
  })
}

let curls = 0
/** curl through the proxy: exit code, status, body, the response headers (the proxy's CONNECT answer first), curl's error text. */
async function curl (args: string[]): Promise<{ code: number, status: number, body: string, headers: string, stderr: string }> {
  const headerFile = join(tmpdir(), `proxy-test-headers-${process.pid}-${curls++}`)
  const r = await new Promise<{ code: number, stdout: string, stderr: string }>(resolve => {
    execFile('curl', ['-sS', '--max-time', '20', '-D', headerFile, '-w', '\n%{http_code}', '--noproxy', '', ...args], {
      env: { PATH: process.env.PATH }
    }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
  const headers = await readFile(headerFile, 'utf8').catch(() => '')
  await rm(headerFile, { force: true })
  const cut = r.stdout.lastIndexOf('\n')
  return { code: r.code, status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut), headers, stderr: r.stderr }
}

/**
 * The forward proxy (issue 24) with real clients (curl) on loopback: an intercepted host's TLS is
 * terminated with a leaf of the sidecar's CA and the upstream's certificate is verified; other
 * hosts are tunnelled; metadata addresses and the sidecar's own ports are refused; a client that
 * does not trust the CA gets curl's certificate error (README, troubleshooting).
 */
describe("forward proxy: CONNECT, TLS interception with the sidecar's CA, refusals", function () {
  this.timeout(60_000)
  let dir: string
  let pki: TestPki
  let upstream: Server
  let upstreamPort: number
  let sidecar: SidecarProcess
  let proxyPort: number
  let caFile: string
  const seen: string[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxy-test-'))
    pki = await makeTestPki(dir, ['DNS:localhost', 'IP:127.0.0.1'], 'upstream')
    upstream = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
      seen.push(
        `${req.method ?? ''} ${req.url ?? ''} host=${req.headers.host ?? ''} proxy-authorization=${
          req.headers['proxy-authorization'] ?? '-'
        }`
      )
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' })
      res.end(`hello ${req.url ?? ''}`)
    })
    await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
    upstreamPort = (upstream.address() as { port: number }).port
    proxyPort = await freePort()
    sidecar = await startSidecar({
      CACHE_PROXY_ADDR: `127.0.0.1:${proxyPort}`,
      CACHE_PROXY_INTERCEPT: 'localhost',
      CACHE_UPSTREAM_CA_FILE: pki.caFile,
      CACHE_LOG_LEVEL: 'info'
    })
    const res = await fetch(`${sidecar.url}/ca.crt`)
    assert.equal(res.status, 200)
    caFile = join(dir, 'sidecar-ca.crt')
    await writeFile(caFile, await res.text())
  })

  after(async () => {
    await sidecar?.destroy()
    upstream?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it("an intercepted host: the client trusts the sidecar's CA, the proxy verified the upstream, the request arrives whole, the access log has no query", async () => {
    const r = await curl([
      '--proxy',
      `http://127.0.0.1:${proxyPort}`,
      '--cacert',
      caFile,
      `https://localhost:${upstreamPort}/files/a.tgz?token=secret`
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.status, 200)
    assert.equal(r.body, 'hello /files/a.tgz?token=secret')
    assert.match(r.headers, /x-upstream: yes/i)
    assert.match(r.headers, /x-cache: MISS/i)
    assert.match(r.headers, /x-cache-source: localhost/i)
    assert.ok(seen.some(s => s.startsWith('GET /files/a.tgz?token=secret') && s.includes('proxy-authorization=-')), seen.join('\n'))
    // Written when the response finished: it may reach the process's output after curl's exit.
    const line = await waitFor(() => sidecar.logs().find(l => l.includes('"msg":"proxied request"') && l.includes('/files/a.tgz')), {
      timeoutMs: 10_000,
      what: 'the access-log line of the proxied request'
    })
    assert.match(line, /"host":"localhost"/)
    assert.doesNotMatch(line, /token=secret/)
  })

  it("a host not on the intercept list is a plain tunnel: the client sees the upstream's own certificate", async () => {
    const r = await curl(['--proxy', `http://127.0.0.1:${proxyPort}`, '--cacert', pki.caFile, `https://127.0.0.1:${upstreamPort}/plain`])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.body, 'hello /plain')
    assert.doesNotMatch(r.headers, /x-cache/i, 'the proxy did not read the tunnel')
  })

  it("a client that does not trust the CA gets curl's certificate error (exit 60), nothing else", async () => {
    const r = await curl(['--proxy', `http://127.0.0.1:${proxyPort}`, '--cacert', pki.caFile, `https://localhost:${upstreamPort}/x`])
    assert.equal(r.code, 60, r.stderr)
    assert.match(r.stderr, /SSL certificate problem|unable to get local issuer certificate/i)
  })

  it("CONNECT to the metadata address and to the sidecar's own port is refused (403), a malformed target is 400", async () => {
    const meta = await curl([
      '--proxy',
      `http://127.0.0.1:${proxyPort}`,
      '--connect-timeout',
      '5',
      'https://169.254.169.254/latest/meta-data/'
    ])
    assert.notEqual(meta.code, 0)
    assert.match(meta.headers, /HTTP\/1\.1 403/)
    const own = await curl(['--proxy', `http://127.0.0.1:${proxyPort}`, '-p', `http://127.0.0.1:${sidecar.port}/api/cache/stats`])
    assert.match(own.headers, /HTTP\/1\.1 403/)
    const plainOwn = await curl(['--proxy', `http://127.0.0.1:${proxyPort}`, `http://127.0.0.1:${sidecar.port}/api/cache/stats`])
    assert.equal(plainOwn.status, 403, plainOwn.body)
    assert.match(plainOwn.body, /own port/)
    const malformed = await rawConnect(proxyPort, 'CONNECT no-port-here HTTP/1.1\r\nhost: x\r\n\r\n')
    assert.match(malformed, /^HTTP\/1\.1 400 .*CONNECT needs host:port/s)
  })

  it('stats and metrics count what the proxy did per host: requests and bytes, tunnels, refusals', async () => {
    const stats = await (await fetch(`${sidecar.url}/api/cache/stats`)).json() as {
      proxy_requests: number
      proxy_tunnels: number
      proxy_refused: number
      bytes_proxied: number
      proxy_by_host: Record<string, { requests: number, tunnels: number, refused: number }>
    }
    assert.ok(
      stats.proxy_by_host.localhost !== undefined && stats.proxy_by_host.localhost.requests >= 1,
      JSON.stringify(stats.proxy_by_host)
    )
    assert.ok(stats.bytes_proxied >= 'hello /files/a.tgz?token=secret'.length)
    assert.ok((stats.proxy_by_host['127.0.0.1']?.tunnels ?? 0) >= 1)
    assert.ok((stats.proxy_by_host['169.254.169.254']?.refused ?? 0) >= 1)
    const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
    assert.match(metrics, /^p2p_cache_proxy_intercepted_requests_total\{intercept="localhost"\} [1-9]/m)
    assert.match(metrics, /^p2p_cache_proxy_refused_total [1-9]/m)
  })

  it('diagnose: the CA readable, the proxy answering, clients have used it; a proxy address nothing listens on fails', async () => {
    const env = {
      HOME: dir,
      CACHE_DIR: join(sidecar.dir, 'data'),
      CACHE_ENABLE_P2P: 'false',
      CACHE_HTTP_ADDR: sidecar.host,
      CACHE_PROXY_ADDR: `127.0.0.1:${proxyPort}`,
      // Only loopback: the upstream checks ask these.
      CACHE_REGISTRY_UPSTREAMS: `localhost=https://localhost:${upstreamPort}`,
      CACHE_API_UPSTREAMS: `github=https://localhost:${upstreamPort}`
    }
    const args = [
      'diagnose',
      '--json',
      '--docker-host',
      `unix://${join(dir, 'no-docker.sock')}`,
      '--containerd-hosts',
      join(dir, 'no-hosts')
    ]
    const checks = async (e: Record<string, string>): Promise<Map<string, { verdict: string, summary: string }>> => {
      const r = await runCli(args, e, { timeoutMs: 60_000 })
      const report = JSON.parse(r.stdout) as { findings: Array<{ check: string, verdict: string, summary: string }> }
      return new Map(report.findings.filter(f => f.check.startsWith('proxy.')).map(f => [f.check, f]))
    }
    const found = await checks(env)
    assert.equal(found.get('proxy.ca')?.verdict, 'ok', found.get('proxy.ca')?.summary)
    assert.equal(found.get('proxy.listen')?.verdict, 'ok', found.get('proxy.listen')?.summary)
    assert.equal(found.get('proxy.clients')?.verdict, 'ok', found.get('proxy.clients')?.summary)
    const elsewhere = await checks({ ...env, CACHE_PROXY_ADDR: `127.0.0.1:${await freePort()}` })
    assert.equal(elsewhere.get('proxy.listen')?.verdict, 'fail')
  })

  it('start-up refuses a non-loopback proxy address without CACHE_PROXY_ALLOW (exit 2, naming both)', async () => {
    const r = await runCli(
      ['serve'],
      { CACHE_DIR: join(dir, 'refused'), CACHE_PROXY_ADDR: '0.0.0.0:3128', CACHE_ENABLE_P2P: 'false' },
      { timeoutMs: 20_000 }
    )
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /CACHE_PROXY_ADDR.*CACHE_PROXY_ALLOW/)
  })

  it('p2p-cache ca prints the CA the running sidecar serves, and the steps; --pem the certificate alone', async () => {
    const env = { CACHE_DIR: join(sidecar.dir, 'data'), CACHE_HTTP_ADDR: sidecar.host, CACHE_PROXY_ADDR: `127.0.0.1:${proxyPort}` }
    const pem = await runCli(['ca', '--pem'], env)
    assert.equal(pem.code, 0, pem.stderr)
    assert.equal(pem.stdout, await readFile(caFile, 'utf8'))
    const steps = await runCli(['ca'], env)
    assert.match(steps.stdout, /BEGIN CERTIFICATE/)
    assert.match(steps.stdout, new RegExp(`HTTPS_PROXY=http://127\\.0\\.0\\.1:${proxyPort}`))
    assert.match(steps.stdout, /update-ca-certificates/)
    const none = await runCli(['ca'], { CACHE_DIR: join(dir, 'empty'), CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}` })
    assert.equal(none.code, 2)
    assert.match(none.stderr, /no proxy CA yet.*CACHE_PROXY_ADDR/)
  })
})
