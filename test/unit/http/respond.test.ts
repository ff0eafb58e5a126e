import assert from 'node:assert/strict'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { sendJson, sendText } from '../../../src/http/respond.js'
import { closeServer, listenLocal } from './local.js'

describe('respond: JSON and text responses', () => {
  let server: Server
  let port: number
  let handler: (res: ServerResponse) => void = () => {}

  before(async () => {
    server = createServer((_req, res) => {
      handler(res)
    })
    port = await listenLocal(server)
  })
  after(async () => {
    await closeServer(server)
  })

  it('sendJson sends the status, application/json, the byte length (not the character count) and extra headers', async () => {
    handler = res => {
      sendJson(res, 429, { error: 'trop de requêtes ✋' }, { 'retry-after': '7' })
    }
    const res = await fetch(`http://127.0.0.1:${port}/`)
    const body = await res.text()
    assert.equal(res.status, 429)
    assert.equal(res.headers.get('content-type'), 'application/json')
    assert.equal(res.headers.get('retry-after'), '7')
    assert.equal(Number(res.headers.get('content-length')), Buffer.byteLength(body))
    assert.deepEqual(JSON.parse(body), { error: 'trop de requêtes ✋' })
  })

  it('sendText defaults to text/plain; charset=utf-8 and takes another content type', async () => {
    handler = res => {
      sendText(res, 200, 'ok é')
    }
    let res = await fetch(`http://127.0.0.1:${port}/`)
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8')
    assert.equal(res.headers.get('content-length'), '5')
    assert.equal(await res.text(), 'ok é')
    handler = res => {
      sendText(res, 200, '# HELP x\n', 'text/plain; version=0.0.4')
    }
    res = await fetch(`http://127.0.0.1:${port}/`)
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4')
    await res.text()
  })
})
