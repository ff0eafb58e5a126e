import assert from 'node:assert/strict'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import { ProxyUpstreams, upstreamName } from '../../../src/proxy/proxy-upstreams.js'
import { RegistryIntercept } from '../../../src/proxy/registry-intercept.js'
import { UpstreamStatusError, UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import type { RegistryClient } from '../../../src/upstream/registry-client.js'
import type { Upstream } from '../../../src/upstream/upstream.js'
import { silentLog } from '../fakes/log.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import type { Digest } from '../../../src/oci/digest.js'
import { waitFor } from '../../fixtures/wait.js'

const BODY = Buffer.from('private layer bytes')
const DIGEST = `sha256:${createHash('sha256').update(BODY).digest('hex')}`

/** A client whose relay answers from `answer`, recording what it was sent. */
type Relayed = Array<{ method: string, path: string, headers: Record<string, string> }>

function fakeClient (
  name: string,
  origin: string,
  answer: (path: string, headers: Record<string, string>) => { status: number, body: Buffer }
): RegistryClient & { relayed: Relayed } {
  const relayed: Relayed = []
  return {
    name,
    url: new URL(origin),
    relayed,
    relay: async (method: string, path: string, headers: Record<string, string>) => {
      relayed.push({ method, path, headers })
      const a = answer(path, headers)
      return {
        status: a.status,
        headers: { 'content-length': String(a.body.byteLength), 'set-cookie': 'x=1' },
        body: Readable.from([a.body])
      }
    },
    close: async () => {}
  } as unknown as RegistryClient & { relayed: Relayed }
}

describe('registry interception: the mirror for what the sidecar may read, a relay for the rest', () => {
  let server: Server
  let port: number
  let route: RegistryIntercept
  let served: string[]
  let refuse: number | undefined
  let client: ReturnType<typeof fakeClient>
  let relayBody: Buffer
  let privateStore: TestStore

  beforeEach(async () => {
    served = []
    refuse = undefined
    relayBody = BODY
    privateStore = await openTestStore()
    // The registry lets `Bearer a` read everything, anyone else nothing.
    client = fakeClient(
      'ghcr.io',
      'https://ghcr.io',
      (_path, headers) =>
        headers.authorization === 'Bearer a' || headers.authorization === 'Bearer client-token' || headers.authorization === undefined
          ? { status: 200, body: relayBody }
          : { status: 401, body: Buffer.from('{"errors":[]}') }
    )
    const upstreams = new ProxyUpstreams({
      configured: [client],
      make: () => {
        throw new Error('not made')
      },
      credential: () => undefined
    })
    route = new RegistryIntercept({
      upstreams,
      registry: {
        serve: async (_req, res, url, upstream, refused) => {
          served.push(`${upstream().name} ${url.pathname}`)
          if (refuse !== undefined && refused !== undefined) {
            await refused(new UpstreamStatusError('ghcr.io', refuse, '', undefined))
            return
          }
          res.writeHead(200, { 'content-length': 2 })
          res.end('ok')
        }
      },
      privateStore: privateStore.store,
      log: silentLog()
    })
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      route.handle({ host: 'ghcr.io', port: 443 }, req, res).then(done => {
        if (!done) {
          res.writeHead(299)
          res.end('passed through')
        }
      }, () => {
        res.destroy()
      })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  afterEach(async () => {
    await new Promise(resolve => server.close(resolve))
    await privateStore.dispose()
  })

  const get = async (
    path: string,
    headers: Record<string, string> = {}
  ): Promise<{ status: number, body: string, headers: IncomingMessage['headers'] } | Error> =>
    await new Promise(resolve => {
      const req = request({ host: '127.0.0.1', port, path, headers }, res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers })
        })
        res.on('error', resolve)
      })
      req.on('error', resolve)
      req.end()
    })

  it("token endpoints, pushes and malformed paths pass through; pulls go to the mirror with the host's client", async () => {
    for (const path of ['/token?scope=repository:org/app:pull', '/v2/org/app/blobs/uploads/', '/v2/../etc/manifests/x']) {
      const r = await get(path)
      assert.ok(!(r instanceof Error) && r.status === 299, path)
    }
    const r = await get('/v2/org/app/manifests/1')
    assert.ok(!(r instanceof Error) && r.status === 200)
    assert.deepEqual(served, ['ghcr.io /v2/org/app/manifests/1'])
  })

  it("the API check /v2/ is the registry's own answer (its challenge), or 200 from here while the registry is unreachable", async () => {
    let down = false
    const relay = client.relay.bind(client)
    client.relay = async (...args: Parameters<RegistryClient['relay']>) => {
      if (down) throw new UpstreamUnavailableError('ghcr.io', 'connect ECONNREFUSED')
      return await relay(...args)
    }
    const up = await get('/v2/', { authorization: 'Bearer b' })
    assert.ok(!(up instanceof Error) && up.status === 401 && up.body === '{"errors":[]}', "the registry's refusal, as it gave it")
    down = true
    const answered = await get('/v2/')
    assert.ok(
      !(answered instanceof Error) && answered.status === 200 && answered.body === '{}' &&
        answered.headers['docker-distribution-api-version'] === 'registry/2.0'
    )
    assert.deepEqual(served, [], 'the mirror routes were not asked')
  })

  it("a refusal of the sidecar's access is relayed with the client's Authorization, remembered per repository (not for a 404)", async () => {
    refuse = 401
    const r = await get(`/v2/org/private/blobs/${DIGEST}`, { authorization: 'Bearer client-token', cookie: 'no' })
    assert.ok(!(r instanceof Error))
    assert.equal(r.status, 200)
    assert.equal(r.body, BODY.toString())
    assert.equal(r.headers['x-cache'], 'MISS')
    assert.equal(r.headers['set-cookie'], undefined, 'only registry fields are relayed back')
    assert.equal(client.relayed[0]?.headers.authorization, 'Bearer client-token')
    assert.equal(client.relayed[0]?.headers.cookie, undefined)
    await get('/v2/org/private/manifests/1', { authorization: 'Bearer client-token' })
    assert.equal(served.length, 1, 'the repository is relayed straight away after a refusal')
    refuse = 404
    await get('/v2/org/other/manifests/nope')
    await get('/v2/org/other/manifests/nope')
    assert.equal(served.length, 3, 'a 404 is not remembered')
  })

  it('private content read with credential A is kept apart, served to A after one authorized HEAD, refused to B', async () => {
    refuse = 401
    const path = `/v2/org/private/blobs/${DIGEST}`
    const first = await get(path, { authorization: 'Bearer a' })
    assert.ok(!(first instanceof Error) && first.status === 200 && first.body === BODY.toString())
    assert.deepEqual(client.relayed.map(r => r.method), ['HEAD', 'GET'])
    // Committed once the answer is complete.
    await waitFor(async () => await privateStore.store.stat(DIGEST as Digest) !== undefined, {
      timeoutMs: 5_000,
      what: 'the blob kept in the private store'
    })
    const again = await get(path, { authorization: 'Bearer a' })
    assert.ok(!(again instanceof Error) && again.status === 200 && again.headers['x-cache'] === 'HIT' && again.body === BODY.toString())
    assert.equal(client.relayed.length, 2, "A's confirmation is remembered: no request upstream")
    const b = await get(path, { authorization: 'Bearer b' })
    assert.ok(!(b instanceof Error) && b.status === 401, "B gets the registry's own refusal")
    assert.deepEqual(client.relayed.slice(2).map(r => `${r.method} ${r.headers.authorization ?? ''}`), ['HEAD Bearer b', 'GET Bearer b'])
  })

  it('relayed bytes that do not match the digest asked for are cut, never completed', async () => {
    refuse = 403
    relayBody = Buffer.from('something else entirely')
    const r = await get(`/v2/org/private/blobs/${DIGEST}`, { authorization: 'Bearer a' })
    assert.ok(r instanceof Error, 'the answer was cut')
    assert.equal(await privateStore.store.stat(DIGEST as Digest), undefined, 'and nothing was kept')
  })

  it('intercepted hosts without a CACHE_REGISTRY_UPSTREAMS entry get a client of their own, named as the mirror names them', () => {
    const made: Upstream[] = []
    const upstreams = new ProxyUpstreams({
      configured: [],
      make: u => {
        made.push(u)
        return fakeClient(u.name, u.url.href, () => ({ status: 200, body: BODY }))
      },
      credential: () => undefined,
      max: 2
    })
    assert.equal(upstreams.for({ host: 'registry-1.docker.io', port: 443 })?.name, 'docker.io')
    assert.equal(upstreams.for({ host: 'registry-1.docker.io', port: 443 })?.name, 'docker.io')
    assert.equal(upstreams.for({ host: 'quay.io', port: 8443 })?.name, 'quay.io:8443')
    assert.equal(upstreams.for({ host: 'ghcr.io', port: 443 }), undefined, 'past the bound: relayed uncached')
    assert.deepEqual(made.map(u => u.url.origin), ['https://registry-1.docker.io', 'https://quay.io:8443'])
    assert.equal(upstreamName({ host: 'ghcr.io', port: 443 }), 'ghcr.io')
  })
})
