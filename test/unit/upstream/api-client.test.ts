import assert from 'node:assert/strict'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ApiClient, type ApiGetAnswer } from '../../../src/upstream/api-client.js'
import { FakeApiUpstream } from '../fakes/api-upstream.js'

describe('ApiClient: the HTTP client of the API upstreams', () => {
  let server: Server
  let port: number
  let client: ApiClient | undefined
  let fake: FakeApiUpstream
  let handler: (req: IncomingMessage, res: ServerResponse) => void
  let notes: Array<[string, string | undefined, number]>

  beforeEach(async () => {
    fake = new FakeApiUpstream()
    fake.token('alice').repo('octo/hello')
    handler = fake.handler
    notes = []
    server = createServer((req, res) => {
      handler(req, res)
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  afterEach(async () => {
    await client?.close()
    client = undefined
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })

  function open (concurrency = 4, path = ''): ApiClient {
    const c = new ApiClient({
      upstreams: [{ name: 'github', url: new URL(`http://127.0.0.1:${port}${path}`) }],
      concurrency,
      timeoutMs: 2000,
      onRateLimit: (upstream, authorization, remaining) => {
        notes.push([upstream, authorization, remaining])
      }
    })
    client = c
    return c
  }

  it('knows its upstreams by name only', () => {
    const c = open()
    assert.equal(c.upstream('github')?.base, `http://127.0.0.1:${port}`)
    assert.equal(c.upstream('gitlab'), undefined)
  })

  it("GET reads the whole answer, sets Host to the upstream's and reports X-RateLimit-Remaining per credential", async () => {
    const c = open()
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    const signal = new AbortController().signal
    const a = await c.get(up, '/repos/octo/hello', { host: 'evil.example', authorization: 'Bearer alice' }, { signal })
    assert.equal(a.status, 200)
    assert.equal((JSON.parse(a.body.toString()) as { full_name: string }).full_name, 'octo/hello')
    assert.equal(fake.log[0]?.headers.host, `127.0.0.1:${port}`)
    await c.get(up, '/repos/octo/hello', { authorization: 'Bearer alice' }, { signal })
    await c.get(up, '/repos/octo/hello', {}, { signal })
    assert.deepEqual(notes, [['github', 'Bearer alice', 4999], ['github', 'Bearer alice', 4998], ['github', undefined, 59]])
  })

  it('a 304 to a conditional GET comes back as is, with an empty body', async () => {
    const c = open()
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    const signal = new AbortController().signal
    const first = await c.get(up, '/repos/octo/hello', {}, { signal })
    const again = await c.get(up, '/repos/octo/hello', { 'if-none-match': String(first.headers.etag) }, { signal })
    assert.equal(again.status, 304)
    assert.ok(again.oversize === undefined)
    assert.equal(again.body.byteLength, 0)
    assert.equal(again.headers['x-ratelimit-remaining'], '59', 'GitHub does not count a 304')
  })

  it('an upstream URL with a path prefix (GitHub Enterprise /api/v3) keeps it', async () => {
    const c = open(4, '/api/v3/')
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    await c.get(up, '/repos/octo/hello', {}, { signal: new AbortController().signal })
    assert.equal(fake.log[0]?.path, '/api/v3/repos/octo/hello')
  })

  it('no more than `concurrency` requests are in flight to one upstream; the rest wait in its queue', async () => {
    const held: ServerResponse[] = []
    let arrived!: () => void
    const two = new Promise<void>(resolve => {
      arrived = resolve
    })
    handler = (_req, res) => {
      held.push(res)
      if (held.length === 2) arrived()
    }
    const c = open(2)
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    const signal = new AbortController().signal
    const all = Promise.all([1, 2, 3, 4, 5].map(async i => await c.get(up, `/r/${i}`, {}, { signal })))
    await two
    assert.equal(up.queue.pending, 2)
    assert.equal(up.queue.size, 3)
    handler = (_req, res) => {
      res.end('late')
    }
    for (const res of held.splice(0)) res.end('first')
    const answers = await all
    assert.equal(answers.filter(a => a.body.toString() === 'first').length, 2)
    assert.equal(answers.length, 5)
  })

  it('a request aborted while it waits in the queue is never sent', async () => {
    let release!: () => void
    const gate = new Promise<void>(resolve => {
      release = resolve
    })
    let seen = 0
    handler = (_req, res) => {
      seen++
      void gate.then(() => res.end('ok'))
    }
    const c = open(1)
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    const first = c.get(up, '/a', {}, { signal: new AbortController().signal })
    const left = new AbortController()
    const queued = c.get(up, '/b', {}, { signal: left.signal })
    left.abort(new Error('client left'))
    await assert.rejects(queued)
    release()
    await first
    assert.equal(seen, 1)
  })

  describe('a bounded read (maxBytes)', () => {
    /** The whole body of an answer, read from its stream when it is oversize. */
    async function whole (answer: ApiGetAnswer): Promise<Buffer> {
      if (answer.oversize === undefined) return answer.body
      const chunks: Buffer[] = []
      for await (const chunk of answer.body) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    }

    it('a body within maxBytes is read whole', async () => {
      handler = (_req, res) => {
        res.end('x'.repeat(16))
      }
      const c = open()
      const up = c.upstream('github')
      assert.ok(up !== undefined)
      const answer = await c.get(up, '/a', {}, { signal: new AbortController().signal, maxBytes: 16 })
      assert.ok(answer.oversize === undefined)
      assert.equal(answer.body.toString(), 'x'.repeat(16))
    })

    it('a body that grows past maxBytes is handed over before its end, as a stream of all of it from byte 0', async () => {
      let finish!: () => void
      handler = (_req, res) => {
        // Chunked (no Content-Length): only counting the bytes finds it too long.
        res.write('a'.repeat(10))
        res.write('b'.repeat(10))
        finish = () => {
          res.end('c'.repeat(10))
        }
      }
      const c = open()
      const up = c.upstream('github')
      assert.ok(up !== undefined)
      const answer = await c.get(up, '/big', { authorization: 'Bearer alice' }, { signal: new AbortController().signal, maxBytes: 15 })
      assert.equal(answer.status, 200)
      assert.equal(answer.oversize, true, 'handed over while the upstream still holds the rest back')
      finish()
      assert.equal((await whole(answer)).toString(), `${'a'.repeat(10)}${'b'.repeat(10)}${'c'.repeat(10)}`)
    })

    it('a Content-Length above maxBytes is enough: nothing is read before the answer is handed over', async () => {
      let finish!: () => void
      handler = (_req, res) => {
        res.writeHead(200, { 'content-length': '40' })
        res.flushHeaders()
        finish = () => {
          res.end('z'.repeat(40))
        }
      }
      const c = open()
      const up = c.upstream('github')
      assert.ok(up !== undefined)
      const answer = await c.get(up, '/declared', {}, { signal: new AbortController().signal, maxBytes: 39 })
      assert.equal(answer.oversize, true)
      finish()
      assert.equal((await whole(answer)).byteLength, 40)
    })

    it('destroying an oversize body ends the upstream request', async () => {
      let closed!: () => void
      const upstreamClosed = new Promise<void>(resolve => {
        closed = resolve
      })
      handler = (_req, res) => {
        res.on('close', closed)
        res.write('y'.repeat(64))
      }
      const c = open()
      const up = c.upstream('github')
      assert.ok(up !== undefined)
      const answer = await c.get(up, '/endless', {}, { signal: new AbortController().signal, maxBytes: 8 })
      assert.ok(answer.oversize === true)
      answer.body.destroy()
      await upstreamClosed
    })
  })

  it("pass streams another method's body through and hands the answer's body over unread", async () => {
    handler = (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        res.writeHead(201, { 'x-ratelimit-remaining': '41' }).end(
          `${req.method ?? ''} ${req.url ?? ''} ${req.headers.host ?? ''} ${Buffer.concat(chunks).toString()}`
        )
      })
    }
    const c = open()
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    // An incoming request to stream: a loopback server hands us one.
    const inbound = createServer((req, res) => {
      void (async () => {
        const answer = await c.pass(req, up, '/repos/octo/hello/issues', {
          'content-type': 'application/json',
          'content-length': String(req.headers['content-length']),
          authorization: 'Bearer alice'
        })
        res.end(`${answer.statusCode} ${await answer.body.text()}`)
      })()
    })
    await new Promise<void>(resolve => inbound.listen(0, '127.0.0.1', resolve))
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port: (inbound.address() as AddressInfo).port,
          method: 'POST',
          path: '/',
          agent: false,
          headers: { 'content-type': 'application/json' }
        }, res => {
          let s = ''
          res.on('data', (c: Buffer) => {
            s += c.toString()
          })
          res.on('end', () => {
            resolve(s)
          })
        })
        req.on('error', reject)
        req.end('{"title":"x"}')
      })
      assert.equal(text, `201 POST /repos/octo/hello/issues 127.0.0.1:${port} {"title":"x"}`)
      assert.deepEqual(notes, [['github', 'Bearer alice', 41]])
    } finally {
      inbound.closeAllConnections()
      await new Promise(resolve => inbound.close(resolve))
    }
  })

  it('pass: options.signal aborts the upstream request', async () => {
    let arrived!: () => void
    const upstreamReached = new Promise<void>(resolve => {
      arrived = resolve
    })
    let closed!: () => void
    const upstreamClosed = new Promise<void>(resolve => {
      closed = resolve
    })
    // The upstream never answers: only the signal ends the request.
    handler = (req, res) => {
      res.on('close', closed)
      req.resume()
      arrived()
    }
    const c = open()
    const up = c.upstream('github')
    assert.ok(up !== undefined)
    const inbound = createServer((req, res) => {
      const left = new AbortController()
      void upstreamReached.then(() => {
        left.abort(new Error('client left'))
      })
      c.pass(req, up, '/repos/octo/hello/issues', { 'content-length': '0' }, { signal: left.signal }).then(
        () => {
          res.end('answered')
        },
        (err: Error) => {
          res.end(`rejected: ${err.message}`)
        }
      )
    })
    await new Promise<void>(resolve => inbound.listen(0, '127.0.0.1', resolve))
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port: (inbound.address() as AddressInfo).port,
          method: 'POST',
          path: '/',
          agent: false,
          headers: { 'content-length': '0' }
        }, res => {
          let s = ''
          res.on('data', (chunk: Buffer) => {
            s += chunk.toString()
          })
          res.on('end', () => {
            resolve(s)
          })
        })
        req.on('error', reject)
        req.end()
      })
      assert.equal(text, 'rejected: client left')
      await upstreamClosed
    } finally {
      inbound.closeAllConnections()
      await new Promise(resolve => inbound.close(resolve))
    }
  })
})
