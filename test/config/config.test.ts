import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { runCli } from '../fixtures/sidecar-process.js'

// What only the real CLI shows: exit code 2, the one line on stderr, nothing created, and flags
// reaching the loader through commander. Every value's parsing and its error text are unit
// tests (test/unit/config/), as are the CLI wiring (test/unit/cli/program.test.ts).

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe('configuration errors at start-up (the real CLI)', () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-config-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  /** `serve` with `env` (P2P off, CACHE_DIR in the temp dir): it must stop with exit 2 and one line, creating no CACHE_DIR. */
  const failedServe = async (env: NodeJS.ProcessEnv, args: string[] = []): Promise<string> => {
    const data = join(dir, `data-${Math.random().toString(36).slice(2)}`)
    const { code, stderr } = await runCli(['serve', ...args], {
      CACHE_ENABLE_P2P: 'false',
      CACHE_DIR: data,
      CACHE_HTTP_ADDR: '127.0.0.1:0',
      ...env
    })
    assert.equal(code, 2, stderr)
    const lines = stderr.trim().split('\n')
    assert.equal(lines.length, 1, `one line, got: ${stderr}`)
    assert.equal(existsSync(data), false, 'nothing is created before the configuration is known to be good')
    return lines[0] ?? ''
  }

  it('a bad variable stops start-up with exit code 2, one line naming it, and no CACHE_DIR created', async () => {
    assert.equal(
      await failedServe({ CACHE_MAX_SIZE: '20XB' }),
      'p2p-cache: invalid CACHE_MAX_SIZE="20XB": expected a size of at least 1MB like 20GB, 512MiB or 1048576'
    )
  })

  it('a secret is not echoed on stderr', async () => {
    const line = await failedServe({ CACHE_API_AUTH: 'github=ghp_secret1 ghp_secretvalue2' })
    assert.match(line, /^p2p-cache: invalid CACHE_API_AUTH entry 2: not name=token; expected /)
    assert.ok(!line.includes('ghp_secret'))
  })

  it('names the flag when the bad value came from a flag', async () => {
    assert.equal(
      await failedServe({}, ['--max-size', 'lots']),
      'p2p-cache: invalid --max-size="lots": expected a size of at least 1MB like 20GB, 512MiB or 1048576'
    )
  })

  it('a flag beats the environment: a bad variable it overrides is not read', async () => {
    // CACHE_MAX_SIZE is bad but --max-size replaces it; the later CACHE_LOG_LEVEL is the first error left.
    assert.match(
      await failedServe({ CACHE_MAX_SIZE: 'lots', CACHE_LOG_LEVEL: 'loud' }, ['--max-size', '1GB']),
      /^p2p-cache: invalid CACHE_LOG_LEVEL="loud": expected /
    )
  })

  it('CACHE_API_APP: an unreadable or non-PEM key file stops start-up, naming the file', async () => {
    assert.match(
      await failedServe({ CACHE_API_APP: 'github=12:34:/nonexistent/app.pem' }),
      /^p2p-cache: invalid CACHE_API_APP file "\/nonexistent\/app.pem" cannot be read \(ENOENT\)/
    )
    assert.match(await failedServe({ CACHE_API_APP: `github=12:34:${fileURLToPath(import.meta.url)}` }), /is not a PEM private key/)
  })

  it('HTTPS listener: a missing, unparsable or mismatched certificate or key stops start-up, naming the file', async () => {
    const pair = async (name: string): Promise<{ cert: string, key: string }> => {
      const cert = join(dir, `${name}.crt`)
      const key = join(dir, `${name}.key`)
      await promisify(execFile)('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert
      ])
      return { cert, key }
    }
    const a = await pair('a')
    const b = await pair('b')
    const missing = join(dir, 'missing.pem')
    const https = { CACHE_HTTPS_ADDR: '127.0.0.1:0' }
    assert.match(
      await failedServe({ ...https, CACHE_TLS_CERT: missing, CACHE_TLS_KEY: a.key }),
      new RegExp(`^p2p-cache: invalid CACHE_TLS_CERT file "${escape(missing)}" cannot be read \\(ENOENT\\); expected .+`)
    )
    assert.match(
      await failedServe({ ...https, CACHE_TLS_CERT: a.key, CACHE_TLS_KEY: a.key }),
      new RegExp(`^p2p-cache: invalid CACHE_TLS_CERT file "${escape(a.key)}" is not a PEM certificate`)
    )
    assert.match(
      await failedServe({ ...https, CACHE_TLS_CERT: a.cert, CACHE_TLS_KEY: a.cert }),
      new RegExp(`^p2p-cache: invalid CACHE_TLS_KEY file "${escape(a.cert)}" is not an unencrypted PEM private key`)
    )
    assert.match(
      await failedServe({ ...https, CACHE_TLS_CERT: a.cert, CACHE_TLS_KEY: b.key }),
      new RegExp(`^p2p-cache: invalid CACHE_TLS_KEY file "${escape(b.key)}" is not the private key of the certificate in CACHE_TLS_CERT`)
    )
  })
})
