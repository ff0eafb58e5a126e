import { once } from 'node:events'
import type { Server } from 'node:http'
import { connect, type Socket } from 'node:net'

/** Listens on 127.0.0.1, an ephemeral port; returns the port. */
export async function listenLocal (server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return address.port
}

/** Closes the server and every connection it still has. */
export async function closeServer (server: Server): Promise<void> {
  if (!server.listening) return
  const closed = new Promise<void>(resolve => {
    server.close(() => {
      resolve()
    })
  })
  server.closeAllConnections()
  await closed
  // The listening handle is released a turn after the close callback.
  await new Promise(resolve => setImmediate(resolve))
}

/** A raw TCP client: what it received, and a promise of its close. */
export interface RawClient {
  socket: Socket
  received: () => string
  closed: Promise<void>
}

/** Connects to 127.0.0.1:`port` and sends `text` (if any); errors (resets) end it like a close. */
export async function rawClient (port: number, text?: string): Promise<RawClient> {
  const socket = connect(port, '127.0.0.1')
  let data = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => {
    data += chunk
  })
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve =>
    socket.once('close', () => {
      resolve()
    })
  )
  await once(socket, 'connect')
  if (text !== undefined) socket.write(text)
  return { socket, received: () => data, closed }
}

/** Polls `check` until it holds or `ms` pass (then fails with `what`). */
export async function eventually (what: string, check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
