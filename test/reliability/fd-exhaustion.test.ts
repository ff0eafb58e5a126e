import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { Agent, get } from 'node:http'
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { promisify } from 'node:util'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, fetchBlob, pushBlob } from '../fixtures/swarm.js'
import { waitFor } from '../fixtures/wait.js'
import { skipUnlessCi } from '../fixtures/skip.js'

const run = promisify(execFile)
const REPO = 'team/fds'

/**
 * Issue 16, overload: a sidecar out of file descriptors. A cached blob whose file can't be
 * opened now (EMFILE) is answered 503 with Retry-After and stays cached; before, the store took
 * any failure to open the file for "gone", dropped the record and fetched the blob again.
 */
describe('out of file descriptors', function () {
  this.timeout(60_000)
  let registry: Registry
  let sidecar: SidecarProcess
  let pid: number

  before(async function () {
    try {
      await run('prlimit', ['--version'])
    } catch {
      skipUnlessCi(
        this,
        "needs util-linux prlimit to lower a running process's open-file limit; the store's open errors are otherwise untested"
      )
    }
    registry = await startRegistry()
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `${registry.host}=${registry.url}` })
    pid = sidecar.proc.child.pid as number
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await sidecar?.destroy()
    await registry?.destroy()
  })

  it('answers 503 STORE_UNAVAILABLE with Retry-After, keeps the blob cached, and serves it once descriptors are back', async () => {
    const data = randomBytes(256 * 1024)
    const digest = await pushBlob(registry.url, REPO, data)
    const url = `${sidecar.url}/v2/${REPO}/blobs/${digest}`
    assert.equal((await fetchBlob(url)).digest, digest)
    await waitFor(async () => (await fetch(url, { method: 'HEAD' })).headers.get('x-cache') === 'HIT', {
      timeoutMs: 10_000,
      what: 'committed'
    })

    // One kept-alive connection, opened before the limit drops: the request needs no new socket.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const request = async (): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> =>
      await new Promise((resolve, reject) => {
        get(url, { agent }, res => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() })
          })
          res.on('error', reject)
        }).on('error', reject)
      })
    assert.equal((await request()).status, 200)
    const { stdout } = await run('prlimit', ['--pid', String(pid), '--nofile', '--output=SOFT,HARD', '--raw', '--noheadings'])
    const [soft, hard] = stdout.trim().split(/\s+/)
    // Not one descriptor free: the limit is the lowest unused descriptor number.
    const open = new Set((await readdir(`/proc/${pid}/fd`)).map(Number))
    let lowestFree = 0
    while (open.has(lowestFree)) lowestFree++
    await run('prlimit', ['--pid', String(pid), `--nofile=${lowestFree}:${hard ?? 'unlimited'}`])
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request()
    } finally {
      await run('prlimit', ['--pid', String(pid), `--nofile=${soft ?? '1024'}:${hard ?? 'unlimited'}`])
      agent.destroy()
    }
    assert.equal(res.status, 503, res.body)
    assert.equal(res.headers['retry-after'], '1')
    const body = JSON.parse(res.body) as { errors: Array<{ code: string, message: string }> }
    assert.equal(body.errors[0]?.code, 'STORE_UNAVAILABLE')
    assert.match(body.errors[0]?.message ?? '', /out of file descriptors; raise its open-file limit/)

    const again = await fetchBlob(url)
    assert.equal(again.digest, digest)
    assert.equal(again.headers.get('x-cache'), 'HIT', 'the record was kept: no second download')
  })
})
