import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { accessLog } from '../../../src/http/access-log.js'
import { recordingLog, type LogLine } from '../fakes/recording-log.js'
import { closeServer, eventually, listenLocal } from './local.js'

describe('accessLog: one line per request, never a header or a body', () => {
  const { log, lines } = recordingLog('info')
  let server: Server
  let port: number
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => {}

  before(async () => {
    const access = accessLog(log)
    assert.ok(access !== undefined)
    server = createServer((req, res) => {
      access(req, res)
      handler(req, res)
    })
    port = await listenLocal(server)
  })
  after(async () => {
    await closeServer(server)
  })

  async function get (path: string, headers: Record<string, string> = {}): Promise<LogLine> {
    const before = lines.length
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, headers, agent: false }, resolve).on('error', reject).end()
    })
    res.resume()
    await once(res, 'end')
    await eventually('the access log line', () => lines.length > before)
    return lines[lines.length - 1] as LogLine
  }

  it('logs method, path, status, bytes, cache and source from headers given to writeHead', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '5', 'x-cache': 'HIT', 'x-cache-source': 'peer' })
      res.end('hello')
    }
    const line = await get('/v2/library/alpine/blobs/sha256:abc?ns=docker.io')
    assert.equal(line.msg, 'request')
    assert.equal(line.level, 30)
    assert.deepEqual(line.req, { method: 'GET', url: '/v2/library/alpine/blobs/sha256:abc?ns=docker.io' })
    assert.deepEqual(line.res, { status: 200 })
    assert.equal(line.bytes, 5)
    assert.equal(line.cache, 'HIT')
    assert.equal(line.source, 'peer')
    assert.equal(line.component, 'http')
    assert.equal(typeof line.ms, 'number')
  })

  it('reads headers set with setHeader too, and leaves out what is not known', async () => {
    handler = (_req, res) => {
      res.setHeader('x-cache', 'MISS')
      res.statusCode = 404
      res.end()
    }
    const line = await get('/nothing')
    assert.equal(line.cache, 'MISS')
    assert.equal(line.source, undefined)
    assert.deepEqual(line.res, { status: 404 })
  })

  it('never writes the Authorization or Cookie header of a client', async () => {
    handler = (_req, res) => {
      res.end('ok')
    }
    const line = await get('/api/cache/stats', { authorization: 'Bearer s3cr3t-token', cookie: 'session=hush' })
    const text = JSON.stringify(line)
    assert.ok(!text.includes('s3cr3t-token'), text)
    assert.ok(!text.includes('hush'), text)
    assert.ok(!text.toLowerCase().includes('authorization'), text)
  })

  it('a server error is logged as a failed request, with its status', async () => {
    handler = (_req, res) => {
      res.writeHead(500)
      res.end()
    }
    const line = await get('/boom')
    assert.equal(line.msg, 'request failed')
    assert.deepEqual(line.res, { status: 500 })
  })

  it('attaches nothing when info is off (CACHE_LOG_LEVEL=warn): the hot path costs nothing', () => {
    assert.equal(accessLog(recordingLog('warn').log), undefined)
  })
})
