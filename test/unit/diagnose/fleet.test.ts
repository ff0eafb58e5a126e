import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkFleetCredentials } from '../../../src/diagnose/fleet.js'
import { FleetCredentialError, type FleetCredential } from '../../../src/upstream/fleet-credential.js'

const SECRET = 'ghp_secretsecretsecret123'

function credential (kind: FleetCredential['kind'], token: string | Error): FleetCredential {
  return {
    kind,
    authorization: async () => {
      if (token instanceof Error) throw token
      return `Bearer ${token}`
    },
    rejected: () => {},
    owns: () => false
  }
}

describe('diagnose fleet: each API upstream accepts its fleet credential', () => {
  let server: Server
  let base: string
  /** What /rate_limit answers for the token in the request. */
  const answers = new Map<string, { status: number, body?: unknown }>()
  const seen: string[] = []

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers.authorization ?? ''}`)
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '')
      const answer = answers.get(token) ?? { status: 401, body: { message: 'Bad credentials' } }
      const text = JSON.stringify(answer.body ?? {})
      res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  after(async () => {
    server.closeAllConnections()
    await new Promise(resolve =>
      server.close(() => {
        setImmediate(resolve)
      })
    )
  })

  function upstream (name: string, path = ''): { name: string, url: URL } {
    return { name, url: new URL(`${base}${path}`) }
  }

  it("an accepted token with room left is ok, stating what is left; GET /rate_limit under the upstream's path", async () => {
    answers.set('good', { status: 200, body: { resources: { core: { limit: 5000, remaining: 4000 } } } })
    const [f] = await checkFleetCredentials([upstream('github.com', '/api/v3/')], new Map([['github.com', credential('token', 'good')]]))
    assert.equal(f?.verdict, 'ok')
    assert.equal(f?.subject, 'github.com')
    assert.match(f?.summary ?? '', /github\.com accepts the fleet credential \(token\) \(4000 of 5000 requests left this hour\)/)
    assert.ok(seen.includes('GET /api/v3/rate_limit Bearer good'))
  })

  it('a nearly spent credential is a warning to give the fleet a credential of its own', async () => {
    answers.set('spent', { status: 200, body: { resources: { core: { limit: 5000, remaining: 100 } } } })
    const [f] = await checkFleetCredentials([upstream('github.com')], new Map([['github.com', credential('token', 'spent')]]))
    assert.equal(f?.verdict, 'warn')
    assert.match(f?.summary ?? '', /nearly spent \(100 of 5000/)
    assert.match(f?.fix ?? '', /a fleet credential of its own/)
  })

  it('a refused token (401) says to replace it in CACHE_API_AUTH, and never shows it', async () => {
    const [f] = await checkFleetCredentials([upstream('github.com')], new Map([['github.com', credential('token', SECRET)]]))
    assert.equal(f?.verdict, 'warn')
    assert.match(f?.summary ?? '', /refuses the fleet credential \(401: revoked, expired or mistyped\)/)
    assert.equal(f?.fix, 'replace the token in CACHE_API_AUTH for github.com')
    assert.equal(JSON.stringify(f).includes(SECRET), false)
  })

  it('a GitHub App that cannot mint a token says to correct CACHE_API_APP', async () => {
    const err = new FleetCredentialError('github.com', 'the private key is not a PEM key')
    const [f] = await checkFleetCredentials([upstream('github.com')], new Map([['github.com', credential('github-app', err)]]))
    assert.equal(f?.verdict, 'warn')
    assert.match(f?.summary ?? '', /the private key is not a PEM key; clients' own credentials are used meanwhile/)
    assert.equal(f?.fix, 'correct CACHE_API_APP for github.com')
  })

  it('another status says to check that the credential belongs to this API', async () => {
    answers.set('odd', { status: 403 })
    const [f] = await checkFleetCredentials([upstream('ghe.example')], new Map([['ghe.example', credential('token', 'odd')]]))
    assert.match(f?.summary ?? '', /answered 403 to GET \/rate_limit/)
    assert.match(f?.fix ?? '', /check that CACHE_API_AUTH for ghe\.example is a credential of this API/)
  })

  it('only upstreams with a fleet credential are checked', async () => {
    const findings = await checkFleetCredentials([upstream('github.com'), upstream('other')], new Map())
    assert.deepEqual(findings, [])
  })
})
