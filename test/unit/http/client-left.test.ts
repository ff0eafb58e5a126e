import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, get, type Server } from 'node:http'
import { clientLeft } from '../../../src/http/client-left.js'
import { closeServer, listenLocal, rawClient } from './local.js'

describe('clientLeft: a signal for a client that hung up', () => {
  let server: Server
  let port: number
  let onSignal: (signal: AbortSignal, res: import('node:http').ServerResponse) => void = () => {}

  before(async () => {
    server = createServer((_req, res) => {
      onSignal(clientLeft(res), res)
    })
    port = await listenLocal(server)
  })
  after(async () => {
    await closeServer(server)
  })

  it('aborts, with a reason, when the client closes before the response is finished', async () => {
    const signalled = new Promise<AbortSignal>(resolve => {
      onSignal = (signal, res) => {
        res.writeHead(200, { 'content-length': '1000' })
        res.write('part of it')
        signal.addEventListener('abort', () => {
          resolve(signal)
        })
      }
    })
    const client = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    while (!client.received().includes('part of it')) await once(client.socket, 'data')
    client.socket.destroy()
    const signal = await signalled
    assert.equal(signal.aborted, true)
    assert.match((signal.reason as Error).message, /client closed the connection/)
  })

  it('does not abort when the response was sent in full, even if the client closes after', async () => {
    const seen = new Promise<AbortSignal>(resolve => {
      onSignal = (signal, res) => {
        res.once('close', () => {
          setImmediate(() => {
            resolve(signal)
          })
        })
        res.end('done')
      }
    })
    const res = await new Promise<import('node:http').IncomingMessage>(resolve => {
      get(`http://127.0.0.1:${port}/`, { agent: false }, resolve)
    })
    res.resume()
    await once(res, 'end')
    res.socket.destroy()
    assert.equal((await seen).aborted, false)
  })
})
