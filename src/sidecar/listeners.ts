import type { Server } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { HostPort } from '../http/host-port.js'
import { listen } from '../http/server.js'
import type { Lifecycle } from '../lifecycle/lifecycle.js'
import type { ProxyServer } from '../proxy/proxy-server.js'

/** What listens, each with the address to listen on (the optional ones absent when off). */
export interface Listeners {
  http: { server: Server, addr: HostPort }
  https?: { server: HttpsServer, addr: HostPort }
  proxy?: { server: ProxyServer, addr: HostPort }
}

/** The addresses they listen on (port 0 resolved). */
export interface Listening {
  httpAddr: HostPort
  httpsAddr: HostPort | undefined
  proxyAddr: HostPort | undefined
}

/**
 * Listens on each address in turn. The listeners stop together (each gives its requests in
 * flight the same grace), and before the next one listens the ones listening already are
 * registered with `life`: a port that is taken closes them.
 * @throws ListenError naming the option whose address is taken or not of this host
 */
export async function listenAll (life: Lifecycle, listeners: Listeners): Promise<Listening> {
  const closing: Array<() => Promise<void>> = []
  life.add('listeners', async () => {
    await Promise.all(closing.map(async close => {
      await close()
    }))
  })
  const { http, https, proxy } = listeners
  const httpAddr = await listen(http.server, http.addr)
  closing.push(async () => {
    await closeServer(http.server)
  })
  let httpsAddr: HostPort | undefined
  if (https !== undefined) {
    httpsAddr = await listen(https.server, https.addr, 'CACHE_HTTPS_ADDR')
    closing.push(async () => {
      await closeServer(https.server)
    })
  }
  let proxyAddr: HostPort | undefined
  if (proxy !== undefined) {
    proxyAddr = await listen(proxy.server.server, proxy.addr, 'CACHE_PROXY_ADDR')
    closing.push(async () => {
      await proxy.server.close()
    })
  }
  return { httpAddr, httpsAddr, proxyAddr }
}

/** Stops accepting; idle connections go now, in-flight downloads get a grace period, then sockets are cut. */
async function closeServer (server: Server | HttpsServer): Promise<void> {
  await new Promise<void>(resolve => {
    server.close(() => resolve())
    server.closeIdleConnections()
    setTimeout(() => {
      server.closeAllConnections()
    }, 5_000).unref()
  })
}
