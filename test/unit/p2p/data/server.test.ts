import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { multiaddr } from '@multiformats/multiaddr'
import { DataListenError, DataServer, dataChannelAddress, type DataOffer } from '../../../../src/p2p/data/server.js'
import { connectData, DataConnectTimeoutError } from '../../../../src/p2p/data/connect.js'
import { silentLog } from '../../fakes/log.js'

const never = new AbortController().signal

/** A TCP server on 127.0.0.1 holding a port (to make it "taken"). */
async function holdPort (): Promise<Server> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return server
}

const portOf = (server: Server): number => (server.address() as { port: number }).port

describe('data channel address (CACHE_P2P_DATA_PORT)', () => {
  it("auto is the first listen address's port + 1 on its host, or any free port after taking it fails", () => {
    assert.deepEqual(dataChannelAddress([multiaddr('/ip4/10.0.0.5/tcp/9000'), multiaddr('/ip4/0.0.0.0/tcp/7000')], 'auto'), {
      host: '10.0.0.5',
      port: 9001,
      anyPortIfTaken: true
    })
    assert.deepEqual(dataChannelAddress([multiaddr('/ip6/::/tcp/9000')], 'auto'), { host: '::', port: 9001, anyPortIfTaken: true })
  })

  it('auto with a P2P port of 0 or 65535 (no port + 1) takes any free port', () => {
    assert.equal(dataChannelAddress([multiaddr('/ip4/0.0.0.0/tcp/0')], 'auto')?.port, 0)
    assert.equal(dataChannelAddress([multiaddr('/ip4/0.0.0.0/tcp/65535')], 'auto')?.port, 0)
    assert.deepEqual(dataChannelAddress([], 'auto'), { host: '0.0.0.0', port: 0, anyPortIfTaken: true })
  })

  it('a number is exactly that port, with no fallback; off is no data channel', () => {
    assert.deepEqual(dataChannelAddress([multiaddr('/ip4/10.0.0.5/tcp/9000')], 4100), {
      host: '10.0.0.5',
      port: 4100,
      anyPortIfTaken: false
    })
    assert.equal(dataChannelAddress([multiaddr('/ip4/10.0.0.5/tcp/9000')], 'off'), undefined)
  })
})

describe('DataServer and connectData: one-time pre-shared keys over TLS 1.3 on 127.0.0.1', () => {
  let server: DataServer
  const sockets: TLSSocket[] = []

  beforeEach(async () => {
    server = new DataServer({ log: silentLog() }, { host: '127.0.0.1', port: 0, anyPortIfTaken: true })
    await server.start()
  })

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    await server.stop()
  })

  /** An offer whose `take` resolves `taken` with the server's socket. */
  function offer (): { offer: DataOffer, taken: Promise<TLSSocket>, expired: () => boolean } {
    let expired = false
    let take!: (s: TLSSocket) => void
    const taken = new Promise<TLSSocket>(resolve => {
      take = resolve
    })
    const made = server.offer('PeerA', s => {
      sockets.push(s)
      take(s)
    }, () => {
      expired = true
    })
    assert.ok(made !== undefined)
    return { offer: made, taken, expired: () => expired }
  }

  it("the requester with the offer's key gets that transfer: bytes flow from the server's socket to it", async () => {
    const o = offer()
    assert.equal(o.offer.port, server.port)
    assert.match(o.offer.ticket, /^[0-9a-f]{32}$/)
    assert.match(o.offer.key, /^[0-9a-f]{64}$/)
    const client = await connectData('127.0.0.1', o.offer, 2_000, { signal: never })
    sockets.push(client)
    assert.equal(client.getProtocol(), 'TLSv1.3')
    const served = await o.taken
    served.end('blob bytes')
    const chunks: Buffer[] = []
    for await (const chunk of client) chunks.push(chunk as Buffer)
    assert.equal(Buffer.concat(chunks).toString(), 'blob bytes')
  })

  it('a wrong key or an unknown ticket fails the handshake; the offer is not taken', async () => {
    const o = offer()
    await assert.rejects(connectData('127.0.0.1', { ...o.offer, key: 'ab'.repeat(32) }, 2_000, { signal: never }))
    await assert.rejects(connectData('127.0.0.1', { ...o.offer, ticket: 'cd'.repeat(16) }, 2_000, { signal: never }))
    let takenEarly = false
    void o.taken.then(() => {
      takenEarly = true
    })
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(takenEarly, false)
    assert.equal(o.expired(), false)
  })

  it('an offer serves one connection: the same ticket a second time is refused', async () => {
    const o = offer()
    sockets.push(await connectData('127.0.0.1', o.offer, 2_000, { signal: never }))
    await o.taken
    await assert.rejects(connectData('127.0.0.1', o.offer, 2_000, { signal: never }))
  })

  it('stop expires the offers nobody took, and no offer is made after it', async () => {
    const o = offer()
    await server.stop()
    assert.equal(o.expired(), true)
    assert.equal(server.offer('PeerA', () => {}, () => {}), undefined)
  })

  it('an explicit port that is taken is a DataListenError that says what to do', async () => {
    const holder = await holdPort()
    try {
      const fixed = new DataServer({ log: silentLog() }, { host: '127.0.0.1', port: portOf(holder), anyPortIfTaken: false })
      await assert.rejects(fixed.start(), (err: unknown) => {
        assert.ok(err instanceof DataListenError)
        assert.match(err.message, new RegExp(`CACHE_P2P_DATA_PORT=${portOf(holder)} \\(127\\.0\\.0\\.1\\)`))
        assert.match(err.message, /EADDRINUSE/)
        assert.match(err.message, /CACHE_P2P_DATA_PORT=auto/)
        return true
      })
      await fixed.stop()
    } finally {
      await new Promise(resolve => holder.close(resolve))
    }
  })

  it('auto with its port taken binds another free port, which the offers carry', async () => {
    const holder = await holdPort()
    const auto = new DataServer({ log: silentLog() }, { host: '127.0.0.1', port: portOf(holder), anyPortIfTaken: true })
    try {
      await auto.start()
      assert.notEqual(auto.port, portOf(holder))
      assert.ok(auto.port > 0)
      assert.equal(auto.offer('PeerA', () => {}, () => {})?.port, auto.port)
    } finally {
      await auto.stop()
      await new Promise(resolve => holder.close(resolve))
    }
  })
})

describe('connectData: failures leave nothing open', () => {
  it('a refused port rejects with the connection error', async () => {
    const holder = await holdPort()
    const port = portOf(holder)
    await new Promise(resolve => holder.close(resolve))
    await assert.rejects(
      connectData('127.0.0.1', { port, ticket: 'ab'.repeat(16), key: 'cd'.repeat(32) }, 2_000, { signal: never }),
      (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED'
    )
  })

  it('a port that accepts but never completes TLS times out with host, port and budget in the message, as reachable, and closes the connection', async () => {
    let closed!: Promise<void>
    const silent = createServer(socket => {
      closed = new Promise(resolve =>
        socket.once('close', () => {
          resolve()
        })
      )
      socket.on('error', () => {}).resume()
    })
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
    try {
      const port = portOf(silent)
      await assert.rejects(
        connectData('127.0.0.1', { port, ticket: 'ab'.repeat(16), key: 'cd'.repeat(32) }, 50, { signal: never }),
        (err: Error) => {
          assert.match(err.message, new RegExp(`no TLS connection to 127\\.0\\.0\\.1:${port} within 50 ms`))
          // The port answered: a late handshake is load, and must not mark the port unreachable.
          assert.ok(
            err instanceof DataConnectTimeoutError && err.portReachable,
            'a timeout after the TCP connect says the port is reachable'
          )
          return true
        }
      )
      await closed
    } finally {
      await new Promise(resolve => silent.close(resolve))
    }
  })

  it('an already aborted signal rejects at once with its reason', async () => {
    const ac = new AbortController()
    ac.abort(new Error('the client left'))
    await assert.rejects(
      connectData('127.0.0.1', { port: 9, ticket: 'ab'.repeat(16), key: 'cd'.repeat(32) }, 2_000, { signal: ac.signal }),
      /the client left/
    )
  })
})
