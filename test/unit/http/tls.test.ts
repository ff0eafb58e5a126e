import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../../src/errors/config-error.js'
import { loadTlsFiles } from '../../../src/http/tls.js'
import { TEST_CERT, TEST_KEY } from './tls-fixture.js'

describe("loadTlsFiles: the HTTPS listener's certificate and key, checked at start-up", () => {
  let dir: string
  let cert: string
  let key: string

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2p-cache-tls-'))
    cert = join(dir, 'cert.pem')
    key = join(dir, 'key.pem')
    writeFileSync(cert, TEST_CERT)
    writeFileSync(key, TEST_KEY)
  })
  after(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  function file (name: string, content: string): string {
    const path = join(dir, name)
    writeFileSync(path, content)
    return path
  }

  function failsWith (certPath: string, keyPath: string, variable: string, reason: RegExp): void {
    assert.throws(() => loadTlsFiles(certPath, keyPath), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.equal(err.variable, variable)
      assert.match(err.message, new RegExp(`^invalid ${variable} file "`), 'one line naming the variable and the file')
      assert.match(err.message, reason)
      assert.match(err.message, /; expected the path of a readable PEM/, 'and what to give instead')
      return true
    })
  }

  it('loads a matching certificate and key', () => {
    const files = loadTlsFiles(cert, key)
    assert.equal(files.cert.toString(), TEST_CERT)
    assert.equal(files.key.toString(), TEST_KEY)
  })

  it('a missing file names the variable, the path and the errno', () => {
    failsWith(join(dir, 'nope.pem'), key, 'CACHE_TLS_CERT', /nope\.pem" cannot be read \(ENOENT\)/)
    failsWith(cert, join(dir, 'nokey.pem'), 'CACHE_TLS_KEY', /cannot be read \(ENOENT\)/)
  })

  it('a directory instead of a file cannot be read', () => {
    failsWith(dir, key, 'CACHE_TLS_CERT', /cannot be read \(EISDIR\)/)
  })

  it('a file that is not a certificate says so (the key given as the certificate, say)', () => {
    failsWith(key, key, 'CACHE_TLS_CERT', /is not a PEM certificate/)
    failsWith(file('garbage.pem', 'hello'), key, 'CACHE_TLS_CERT', /is not a PEM certificate/)
  })

  it('a key that is not a private key, or is encrypted, says it must be an unencrypted PEM key', () => {
    failsWith(cert, cert, 'CACHE_TLS_KEY', /is not an unencrypted PEM private key/)
    const encrypted = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }
    }).privateKey
    failsWith(cert, file('encrypted.pem', encrypted), 'CACHE_TLS_KEY', /is not an unencrypted PEM private key/)
  })

  it('a key of another certificate is refused before any client sees a handshake fail', () => {
    const other = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
    }).privateKey
    failsWith(
      cert,
      file('other.pem', other),
      'CACHE_TLS_KEY',
      /is not the private key of the certificate in CACHE_TLS_CERT \(.*cert\.pem\)/
    )
  })
})
