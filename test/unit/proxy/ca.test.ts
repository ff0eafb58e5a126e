import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { connect, createServer, type Server } from 'node:tls'
import { ProxyCa } from '../../../src/proxy/ca.js'
import { HostList } from '../../../src/proxy/host-list.js'
import { ConfigError } from '../../../src/errors/config-error.js'
import { recordingLog } from '../fakes/recording-log.js'

const run = promisify(execFile)

/** The certificate a TLS server presents with `ca`'s context for `host`, checked by a client that trusts only the CA. */
async function handshake (ca: ProxyCa, host: string): Promise<{ ok: boolean, error?: string, subjectAltName?: string }> {
  const server: Server = createServer({
    SNICallback: (name, cb) => {
      ca.context(name).then(c => {
        cb(null, c)
      }, cb)
    }
  }, s => {
    s.end()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  try {
    return await new Promise(resolve => {
      const socket = connect({ host: '127.0.0.1', port, servername: host, ca: ca.certPem }, () => {
        resolve({ ok: true, subjectAltName: socket.getPeerX509Certificate()?.subjectAltName })
        socket.end()
      })
      socket.on('error', err => {
        resolve({ ok: false, error: err.message })
      })
    })
  } finally {
    server.close()
  }
}

describe("ProxyCa: the proxy's CA, name-constrained to the intercept list (issue 24)", () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxy-ca-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('made on first start in CACHE_DIR/proxy-ca: key mode 0600, a CA whose name constraints are the intercept list', async () => {
    const { log } = recordingLog('info')
    const ca = await ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io,*.gcr.io'), log })
    const key = await stat(join(dir, 'proxy-ca', 'ca.key'))
    assert.equal(key.mode & 0o777, 0o600)
    const cert = new X509Certificate(await readFile(join(dir, 'proxy-ca', 'ca.crt')))
    assert.equal(cert.ca, true)
    assert.deepEqual(ca.constraints, ['gcr.io', 'ghcr.io'])
    // openssl reads the constraints as critical and permitted.
    const { stdout } = await run('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'proxy-ca', 'ca.crt')])
    assert.match(stdout, /Name Constraints: critical\s+Permitted:\s+DNS:gcr\.io\s+DNS:ghcr\.io/)
  })

  it('mints a leaf per host that a client trusting only the CA accepts; a host outside the constraints is refused by the client', async () => {
    const { log } = recordingLog('info')
    const ca = await ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io,*.gcr.io'), log })
    const good = await handshake(ca, 'ghcr.io')
    assert.equal(good.ok, true, good.error)
    assert.equal(good.subjectAltName, 'DNS:ghcr.io')
    assert.equal((await handshake(ca, 'us.gcr.io')).ok, true)
    // Minted anyway (the proxy never asks for it), the leaf still fails the client's check.
    const outside = await handshake(ca, 'example.com')
    assert.equal(outside.ok, false)
    assert.match(outside.error ?? '', /permitted|constraint|certificate/i)
  })

  it('opened again with the same list: the same CA; with another list: a new one, and a warning that says to install it again', async () => {
    const { log, lines } = recordingLog('info')
    const first = await ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io'), log })
    const again = await ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io'), log })
    assert.equal(again.certPem, first.certPem)
    const changed = await ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io,quay.io'), log })
    assert.notEqual(changed.certPem, first.certPem)
    assert.deepEqual(changed.constraints, ['ghcr.io', 'quay.io'])
    assert.ok(lines.some(l => l.level === 40 && /intercept list changed.*install it on the clients again/.test(String(l.msg))))
    assert.equal(lines.some(l => JSON.stringify(l).includes('PRIVATE KEY')), false, 'the key is never logged')
  })

  it("the operator's CA (RSA) mints leaves; a key that is not the certificate's, or files that are not PEM, are refused by name", async () => {
    const { log } = recordingLog('info')
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'op.key'),
      '-out',
      join(dir, 'op.crt'),
      '-days',
      '30',
      '-subj',
      '/CN=fleet CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign'
    ])
    const ca = await ProxyCa.open({
      dir,
      intercept: HostList.parse('ghcr.io'),
      certFile: join(dir, 'op.crt'),
      keyFile: join(dir, 'op.key'),
      log
    })
    assert.equal(ca.constraints, undefined)
    assert.equal((await handshake(ca, 'ghcr.io')).ok, true)

    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    await writeFile(join(dir, 'other.key'), other)
    await assert.rejects(
      ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io'), certFile: join(dir, 'op.crt'), keyFile: join(dir, 'other.key'), log }),
      (err: Error) => err instanceof ConfigError && /CACHE_PROXY_CA_KEY.*not the key of the certificate/.test(err.message)
    )
    await writeFile(join(dir, 'junk.crt'), 'not a certificate')
    await assert.rejects(
      ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io'), certFile: join(dir, 'junk.crt'), keyFile: join(dir, 'op.key'), log }),
      (err: Error) => err instanceof ConfigError && /CACHE_PROXY_CA_CERT.*junk\.crt/.test(err.message)
    )
    await assert.rejects(
      ProxyCa.open({ dir, intercept: HostList.parse('ghcr.io'), certFile: join(dir, 'missing.crt'), keyFile: join(dir, 'op.key'), log }),
      (err: Error) => err instanceof ConfigError && /unreadable \(ENOENT\)/.test(err.message)
    )
  })
})
