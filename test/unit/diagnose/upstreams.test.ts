import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkClock, checkUpstreams } from '../../../src/diagnose/upstreams.js'

describe('diagnose upstreams: each upstream answers, and the clock agrees with them', () => {
  let server: Server
  let port: number
  let closedPort: number
  const paths: string[] = []

  before(async () => {
    server = createServer((req, res) => {
      paths.push(req.url ?? '')
      res.writeHead(req.url?.endsWith('/v2/') === true ? 401 : 200, { 'content-length': 0 })
      res.end()
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
    const closed = createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    closedPort = (closed.address() as AddressInfo).port
    await new Promise(resolve => closed.close(resolve))
  })

  after(async () => {
    server.closeAllConnections()
    await new Promise(resolve =>
      server.close(() => {
        setImmediate(resolve)
      })
    )
  })

  it('a registry answering 401 on /v2/ is reachable (any status counts); its Date header is kept', async () => {
    const { findings, dates } = await checkUpstreams([{ name: 'mirror', url: new URL(`http://127.0.0.1:${port}/prefix`) }], [])
    const [f] = findings
    assert.equal(f?.verdict, 'ok')
    assert.equal(f?.subject, `mirror=http://127.0.0.1:${port}/prefix`)
    assert.match(f?.summary ?? '', /registry upstream mirror answers 401 in \d+ ms/)
    assert.ok(paths.includes('/prefix/v2/'), 'asked at the path under the upstream URL')
    assert.equal(dates.length, 1)
  })

  it('an unreachable upstream is a warning naming the variable to correct, per kind', async () => {
    const url = new URL(`http://127.0.0.1:${closedPort}`)
    const { findings } = await checkUpstreams([{ name: 'docker.io', url }], [{ name: 'github.com', url }])
    const [registry, api] = findings
    assert.equal(registry?.verdict, 'warn')
    assert.match(
      registry?.summary ?? '',
      /registry upstream docker\.io .* is unreachable \(ECONNREFUSED\): misses can only come from peers/
    )
    assert.match(registry?.fix ?? '', /correct CACHE_REGISTRY_UPSTREAMS$/)
    assert.match(api?.fix ?? '', /correct CACHE_API_UPSTREAMS$/)
  })

  it('the clock: skipped without a Date header, ok within a minute, a warning beyond with the NTP fix', () => {
    assert.equal(checkClock([]).verdict, 'skip')
    assert.equal(checkClock(['not a date']).verdict, 'skip')
    assert.equal(checkClock([new Date(Date.now() - 5_000).toUTCString()]).verdict, 'ok')
    const ahead = checkClock([new Date(Date.now() - 300_000).toUTCString()])
    assert.equal(ahead.verdict, 'warn')
    assert.match(ahead.summary, /the clock is 30\d s ahead of the servers' Date headers/)
    assert.match(ahead.fix ?? '', /timedatectl set-ntp true/)
    const behind = checkClock([new Date(Date.now() + 5_000).toUTCString(), new Date(Date.now() + 120_000).toUTCString()])
    assert.match(behind.summary, /behind/, 'the worst skew decides')
  })
})
