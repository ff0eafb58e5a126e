import { createServer } from 'node:net'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Config } from '../config/options.js'
import type { HostPort } from '../http/host-port.js'
import { fail, ok, skip, warn, type Finding } from './finding.js'
import type { LiveSidecar } from './live.js'
import { dataChannelAddress } from '../p2p/data/server.js'

/** Tries to bind host:port; resolves with the error code, or undefined when it could bind. */
async function tryBind (host: string, port: number): Promise<string | undefined> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? err.message)
    })
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => {
        resolve(undefined)
      })
    })
  })
}

const BIND_FIX: Record<string, (what: string, variable: string, example: string) => string> = {
  EADDRINUSE: (what, variable, example) =>
    `another process holds the ${what} port: stop it, or choose a free port with ${variable}=${example}`,
  EADDRNOTAVAIL: (_what, variable, example) => `that address is not on this machine: listen on all interfaces (${variable}=${example})`,
  EACCES: (_what, variable, example) => `ports below 1024 need privileges: use a high port (${variable}=${example})`
}

/**
 * The data channel's port (CACHE_P2P_DATA_PORT; `auto` = the first P2P port + 1) can be bound,
 * or is the running sidecar's. Taken with `auto`, the sidecar falls back to any free port, which
 * peers reach only where no port mapping stands between them: a warning, not a failure.
 */
async function checkDataPort (listen: Multiaddr[], dataPort: Config['p2pDataPort'], live: LiveSidecar | undefined): Promise<Finding> {
  const address = dataChannelAddress(listen, dataPort)
  if (address === undefined) {
    return skip('listen.data', 'the data channel is off (CACHE_P2P_DATA_PORT=off): blobs travel over the libp2p connection')
  }
  const { host, port } = address
  const subject = `${host}:${port}`
  if (port === 0) {
    return ok(
      'listen.data',
      'the data channel takes any free port (the P2P port is 0); peers learn it with each transfer',
      { port },
      subject
    )
  }
  const code = await tryBind(host, port)
  if (code === undefined) return ok('listen.data', `data channel port ${port} can be bound`, { port }, subject)
  if (code === 'EADDRINUSE' && live?.p2p?.dataPort === port) {
    return ok('listen.data', `data channel port ${port} is in use by the running sidecar`, { port, sidecar: live.url }, subject)
  }
  if (code === 'EADDRINUSE' && address.anyPortIfTaken) {
    return warn(
      'listen.data',
      `data channel port ${port} (the P2P port + 1) is taken by another process: the sidecar will use any free port instead`,
      `free port ${port}, or set CACHE_P2P_DATA_PORT to a free port (publish it under the same number when peers reach this node through a port mapping)`,
      { port, error: code },
      subject
    )
  }
  return fail(
    'listen.data',
    `data channel port ${subject} can't be bound (${code})`,
    (BIND_FIX[code] ?? BIND_FIX.EADDRINUSE)?.('data channel', 'CACHE_P2P_DATA_PORT', 'auto') ?? '',
    { port, error: code },
    subject
  )
}

/**
 * The P2P and HTTP ports can be bound — or are bound by the sidecar that answers on the HTTP
 * address, which is fine.
 */
export async function checkListen (
  listen: Multiaddr[],
  http: HostPort,
  dataPort: Config['p2pDataPort'],
  live: LiveSidecar | undefined
): Promise<Finding[]> {
  const out: Finding[] = []
  const livePorts = new Set((live?.p2p?.addrs ?? []).map(a => /\/tcp\/(\d+)/.exec(a)?.[1]).filter(Boolean))
  for (const ma of listen) {
    const [host, tcp] = ma.getComponents()
    const port = Number(tcp?.value ?? '0')
    const code = await tryBind(host?.value ?? '0.0.0.0', port)
    const subject = ma.toString()
    if (code === undefined) out.push(ok('listen.p2p', `P2P address ${subject} can be bound`, { port }, subject))
    else if (code === 'EADDRINUSE' && live?.p2p !== undefined && (livePorts.has(String(port)) || port === 0)) {
      out.push(
        ok(
          'listen.p2p',
          `P2P port ${port} is in use by the running sidecar (peer ${live.p2p.peerId})`,
          { port, sidecar: live.url },
          subject
        )
      )
    } else {
      out.push(
        fail(
          'listen.p2p',
          `P2P address ${subject} can't be bound (${code})`,
          (BIND_FIX[code] ?? BIND_FIX.EADDRINUSE)?.('P2P', 'CACHE_P2P_PORT', '9010') ?? '',
          { port, error: code },
          subject
        )
      )
    }
  }
  out.push(await checkDataPort(listen, dataPort, live))
  const code = await tryBind(http.host, http.port)
  const subject = `${http.host}:${http.port}`
  if (code === undefined) out.push(ok('listen.http', `HTTP address ${subject} can be bound`, { port: http.port }, subject))
  else if (code === 'EADDRINUSE' && live !== undefined) {
    out.push(ok('listen.http', `HTTP port ${http.port} is in use by the running sidecar`, { port: http.port, sidecar: live.url }, subject))
  } else {
    out.push(
      fail(
        'listen.http',
        `HTTP address ${subject} can't be bound (${code})`,
        (BIND_FIX[code] ?? BIND_FIX.EADDRINUSE)?.('HTTP', 'CACHE_HTTP_ADDR', '0.0.0.0:9081') ?? '',
        { port: http.port, error: code },
        subject
      )
    )
  }
  return out
}
