import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  FleetCredentialError,
  GitHubAppInstallation,
  StaticToken,
  loadFleetCredentials,
  validatorIdentity
} from '../../../src/upstream/fleet-credential.js'
import { ConfigError } from '../../../src/errors/config-error.js'
import { FakeClock } from '../fakes/clock.js'

const HOUR = 3_600_000

describe("upstream fleet-credential: the operator's own API credential", () => {
  it('a static token is sent as Bearer and owns only its own header', async () => {
    const t = new StaticToken('ghp_x')
    assert.equal(await t.authorization(), 'Bearer ghp_x')
    assert.equal(t.owns('Bearer ghp_x'), true)
    assert.equal(t.owns('Bearer ghp_y'), false)
    assert.equal(t.owns(undefined), false)
  })

  it('validatorIdentity is stable, differs per credential, and does not reveal it', () => {
    const a = validatorIdentity('Bearer secret-token')
    assert.equal(a, validatorIdentity('Bearer secret-token'))
    assert.notEqual(a, validatorIdentity('Bearer other'))
    assert.match(a, /^[0-9a-f]{32}$/)
    assert.ok(!a.includes('secret'))
  })

  describe('GitHub App installation tokens (against a local stand-in of the token endpoint)', () => {
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' }
    })
    let server: Server
    let base: string
    let clock: FakeClock
    let minted: Array<{ url: string, authorization: string | undefined }>
    let status: number
    let gate: Promise<void> | undefined

    beforeEach(async () => {
      clock = new FakeClock()
      minted = []
      status = 201
      gate = undefined
      server = createServer((req, res) => {
        minted.push({ url: req.url ?? '', authorization: req.headers.authorization })
        const answer = (): void => {
          const body = status === 201
            ? JSON.stringify({
              token: `ghs_${minted.length}`,
              expires_at: new Date(clock.now() + HOUR).toISOString(),
              permissions: { contents: 'read' },
              repository_selection: 'all'
            })
            : JSON.stringify({ message: 'A JSON web token could not be decoded' })
          res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
        }
        if (gate === undefined) answer()
        else void gate.then(answer)
      })
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    })

    afterEach(async () => {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    })

    function app (): GitHubAppInstallation {
      return new GitHubAppInstallation({ upstream: 'github', baseUrl: base, appId: '12345', installationId: 678, privateKey, clock })
    }

    it("mints an installation token with the app's JWT, and reuses it while it is young", async () => {
      const cred = app()
      const signal = new AbortController().signal
      assert.equal(await cred.authorization({ signal }), 'Bearer ghs_1')
      assert.equal(minted[0]?.url, '/app/installations/678/access_tokens')
      assert.match(minted[0]?.authorization ?? '', /^bearer eyJ/i)
      clock.advance(54 * 60_000)
      assert.equal(await cred.authorization({ signal }), 'Bearer ghs_1')
      assert.equal(minted.length, 1)
      assert.equal(cred.owns('Bearer ghs_1'), true)
    })

    it('replaces the token 5 minutes before it expires (FakeClock), and keeps owning the old one', async () => {
      const cred = app()
      const signal = new AbortController().signal
      await cred.authorization({ signal })
      clock.advance(HOUR - 5 * 60_000)
      assert.equal(await cred.authorization({ signal }), 'Bearer ghs_2')
      assert.equal(cred.owns('Bearer ghs_1'), true, "a late rate-limit note of the old token is still the fleet's")
    })

    it('a refused token is replaced at the next call; concurrent callers share one mint', async () => {
      const cred = app()
      const signal = new AbortController().signal
      const first = await cred.authorization({ signal })
      cred.rejected('Bearer someone-else')
      assert.equal(await cred.authorization({ signal }), first, 'rejecting another header changes nothing')
      cred.rejected(first)
      let release!: () => void
      gate = new Promise(resolve => {
        release = resolve
      })
      const both = Promise.all([cred.authorization({ signal }), cred.authorization({ signal })])
      release()
      assert.deepEqual(await both, ['Bearer ghs_2', 'Bearer ghs_2'])
      assert.equal(minted.length, 2)
    })

    it('a mint the endpoint refuses is a FleetCredentialError naming the app, the installation, the status and what to check', async () => {
      status = 401
      await assert.rejects(app().authorization({ signal: new AbortController().signal }), (err: unknown) => {
        assert.ok(err instanceof FleetCredentialError)
        assert.match(
          err.message,
          /fleet credential for API upstream github: could not mint an installation token for app 12345, installation 678 \(upstream answered 401\): check the app id, the installation id and the private key in CACHE_API_APP/
        )
        assert.ok(!err.message.includes('PRIVATE KEY'))
        return true
      })
    })

    it('a caller that gives up stops waiting for the mint', async () => {
      gate = new Promise(() => {})
      const left = new AbortController()
      const pending = app().authorization({ signal: left.signal })
      left.abort(new Error('client left'))
      await assert.rejects(pending, /client left/)
      server.closeAllConnections()
    })
  })

  describe('loadFleetCredentials', () => {
    let dir: string
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fleet-unit-'))
    })
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true })
    })
    const upstreams = [{ name: 'github', url: new URL('https://api.github.com/') }]

    it('gives a static token per CACHE_API_AUTH entry and an app per CACHE_API_APP entry', async () => {
      const key = join(dir, 'app.pem')
      await writeFile(
        key,
        generateKeyPairSync('ec', {
          namedCurve: 'P-256',
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
          publicKeyEncoding: { type: 'spki', format: 'pem' }
        }).privateKey
      )
      const out = loadFleetCredentials(
        upstreams,
        new Map([['ghes', 't']]),
        new Map([['github', { appId: '1', installationId: 2, privateKeyFile: key }]])
      )
      assert.equal(out.get('ghes')?.kind, 'token')
      assert.equal(out.get('github')?.kind, 'github-app')
    })

    it('an unreadable key file is a ConfigError naming CACHE_API_APP, the file and the errno', () => {
      const missing = join(dir, 'missing.pem')
      assert.throws(
        () => loadFleetCredentials(upstreams, new Map(), new Map([['github', { appId: '1', installationId: 2, privateKeyFile: missing }]])),
        (err: unknown) =>
          err instanceof ConfigError && err.message.includes('CACHE_API_APP') && err.message.includes(JSON.stringify(missing)) &&
          err.message.includes('ENOENT')
      )
    })

    it('a file that is not a PEM private key says where to get one', async () => {
      const bad = join(dir, 'bad.pem')
      await writeFile(bad, 'not a key')
      assert.throws(
        () => loadFleetCredentials(upstreams, new Map(), new Map([['github', { appId: '1', installationId: 2, privateKeyFile: bad }]])),
        /invalid CACHE_API_APP file ".*bad\.pem" is not a PEM private key \(generate one on the app's settings page\)/
      )
    })
  })
})
