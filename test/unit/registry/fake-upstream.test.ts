import assert from 'node:assert/strict'
import { once } from 'node:events'
import { UpstreamRateLimitedError, UpstreamStatusError, UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import { FakeRegistryUpstream, pseudoRandom, sha256 } from '../fakes/registry-upstream.js'

/** The fake other unit tests rely on: it must fail the way RegistryClient does. */
describe('FakeRegistryUpstream: behaves like RegistryClient where the resolvers can tell', () => {
  const up = new FakeRegistryUpstream({ chunkSize: 1024 })
  const body = pseudoRandom(64 * 1024, 'fake')
  const digest = up.addBlob('r', body)
  const path = `/v2/r/blobs/${digest}`

  after(async () => {
    await up.close()
  })

  async function read (stream: NodeJS.ReadableStream): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const c of stream) chunks.push(c as Buffer)
    return Buffer.concat(chunks)
  }

  it('429 throws UpstreamRateLimitedError with Retry-After; 5xx and connection failures UpstreamUnavailableError', async () => {
    up.fault(path, { kind: 'status', status: 429, retryAfter: '7' })
    await assert.rejects(
      up.send('GET', 'r', path, {}),
      (err: unknown) => err instanceof UpstreamRateLimitedError && err.retryAfter === '7' && err.status === 429
    )
    up.fault(path, { kind: 'status', status: 503, times: 2 })
    for (let i = 0; i < 2; i++) {
      await assert.rejects(up.send('GET', 'r', path, {}), (err: unknown) => err instanceof UpstreamUnavailableError && err.status === 503)
    }
    up.fault(path, { kind: 'connection' })
    await assert.rejects(
      up.send('GET', 'r', path, {}),
      (err: unknown) => err instanceof UpstreamUnavailableError && err.status === undefined
    )
    assert.deepEqual(await read((await up.sendOk('GET', 'r', path, {})).body), body, 'faults are spent')
  })

  it('sendOk throws UpstreamStatusError with the OCI error body; HEAD has none', async () => {
    const missing = `/v2/r/blobs/${sha256('missing')}`
    await assert.rejects(
      up.sendOk('GET', 'r', missing, {}),
      (err: unknown) => err instanceof UpstreamStatusError && err.status === 404 && /BLOB_UNKNOWN/.test(err.body)
    )
    await assert.rejects(up.sendOk('HEAD', 'r', missing, {}), (err: unknown) => err instanceof UpstreamStatusError && err.body === '')
  })

  it('a dropped body errors after the given bytes; a corrupt one has the right length and the wrong digest', async () => {
    up.fault(path, { kind: 'drop', afterBytes: 5000 })
    const dropped = (await up.sendOk('GET', 'r', path, {})).body
    let got = 0
    await assert.rejects(
      (async () => {
        for await (const c of dropped) got += (c as Buffer).byteLength
      })(),
      /other side closed/
    )
    assert.equal(got, 5000)
    up.fault(path, { kind: 'corrupt' })
    const bad = await read((await up.sendOk('GET', 'r', path, {})).body)
    assert.equal(bad.byteLength, body.byteLength)
    assert.notEqual(sha256(bad), digest)
  })

  it('a stalled body sends nothing more until its request is aborted, then errors with the reason', async () => {
    up.fault(path, { kind: 'stall', afterBytes: 2048 })
    const ac = new AbortController()
    const res = await up.sendOk('GET', 'r', path, {}, { signal: ac.signal })
    const chunks: Buffer[] = []
    res.body.on('data', (c: Buffer) => chunks.push(c))
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(Buffer.concat(chunks).byteLength, 2048)
    const failed = once(res.body, 'error')
    ac.abort(new Error('client left'))
    const [err] = await failed as [Error]
    assert.equal(err.message, 'client left')
  })

  it('delayed headers wait for the given promise, and an abort ends the wait', async () => {
    let release!: () => void
    up.fault(path, {
      kind: 'delay',
      ms: new Promise<void>(resolve => {
        release = resolve
      })
    })
    let answered = false
    const pending = up.send('HEAD', 'r', path, {}).then(r => {
      answered = true
      return r
    })
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(answered, false)
    release()
    assert.equal((await pending).headers['content-length'], String(body.byteLength))
    up.fault(path, { kind: 'delay', ms: Infinity })
    const ac = new AbortController()
    const waiting = up.send('GET', 'r', path, {}, { signal: ac.signal })
    ac.abort(new Error('gave up'))
    await assert.rejects(waiting, /gave up/)
  })

  it('bodies push only as they are read (backpressure), and count what they sent', async () => {
    const before = up.bytesSent
    const res = await up.sendOk('GET', 'r', path, {})
    await new Promise(resolve => setImmediate(resolve))
    assert.ok(up.bytesSent - before <= 2 * 1024, `an unread body is not drained (${up.bytesSent - before} bytes pushed)`)
    await read(res.body)
    assert.equal(up.bytesSent - before, body.byteLength)
    assert.ok(up.count('GET', path) > 0)
  })

  it('Range: 206 with Content-Range, 416 past the end', async () => {
    const part = await up.sendOk('GET', 'r', path, { range: 'bytes=10-19' })
    assert.equal(part.status, 206)
    assert.equal(part.headers['content-range'], `bytes 10-19/${body.byteLength}`)
    assert.deepEqual(await read(part.body), body.subarray(10, 20))
    const past = await up.send('GET', 'r', path, { range: `bytes=${body.byteLength}-` })
    assert.equal(past.status, 416)
    assert.equal(past.headers['content-range'], `bytes */${body.byteLength}`)
    past.body.destroy()
  })
})
