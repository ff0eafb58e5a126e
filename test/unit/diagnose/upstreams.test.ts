import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkClock, checkUpstreams, type ServerDate } from '../../../src/diagnose/upstreams.js'

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
    const at = (server: string, ms: number): ServerDate => ({ server, date: new Date(Date.now() + ms).toUTCString() })
    assert.equal(checkClock([{ server: 'docker.io', date: 'not a date' }]).verdict, 'skip')
    const near = checkClock([at('docker.io', -5_000)])
    assert.equal(near.verdict, 'ok')
    assert.match(near.summary, /^the clock agrees with the Date headers of docker\.io \(within [56] s\)$/)
    assert.deepEqual(near.facts?.servers, ['docker.io'])
    const ahead = checkClock([at('docker.io', -300_000)])
    assert.equal(ahead.verdict, 'warn')
    assert.match(ahead.summary, /the clock is 30\d s ahead of the Date headers of docker\.io/)
    assert.match(ahead.fix ?? '', /timedatectl set-ntp true/)
    const behind = checkClock([at('docker.io', 5_000), at('github', 120_000)])
    assert.match(behind.summary, /behind the Date headers of docker\.io, github/, 'the worst skew decides')
  })

  it('the clock: no upstream answered, so it could not be compared: skipped, never "agrees"', async () => {
    const url = new URL(`http://127.0.0.1:${closedPort}`)
    const { dates } = await checkUpstreams([{ name: 'docker.io', url }], [{ name: 'github', url }])
    assert.deepEqual(dates, [])
    const clock = checkClock(dates)
    assert.equal(clock.verdict, 'skip')
    assert.match(clock.summary, /^the clock could not be compared: no upstream answered with a valid Date header/)
    assert.doesNotMatch(clock.summary, /agree/)
  })

  it('the clock: an upstream that answered is named with its Date header', async () => {
    const { dates } = await checkUpstreams([{ name: 'mirror', url: new URL(`http://127.0.0.1:${port}`) }], [])
    assert.deepEqual(dates.map(d => d.server), ['mirror'])
    assert.equal(checkClock(dates).verdict, 'ok')
  })
})
