import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/load.js'
import { startSidecar } from '../../src/sidecar/sidecar.js'
import { freePort } from '../fixtures/ports.js'

/** The resources keeping the event loop alive, by type (sockets, servers, timers, file handles...). */
function resources (): Map<string, number> {
  const counts = new Map<string, number>()
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1)
  return counts
}

/** Whether `port` on 127.0.0.1 can be bound now. */
async function bindable (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const srv = createServer()
    srv.once('error', () => {
      resolve(false)
    })
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      srv.close(() => {
        resolve(true)
      })
    })
  })
}

/** Polls (bounded) until `check` is empty; fails with what is left. */
async function settled (check: () => Promise<string[]>, what: string): Promise<void> {
  let left: string[] = []
  for (let i = 0; i < 400; i++) {
    left = await check()
    if (left.length === 0) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  assert.fail(`${what}: ${left.join(', ')}`)
}

/**
 * Issue 28: the sidecar's parts start in order and stop in reverse (Lifecycle). A start that
 * fails at any step releases what it had opened: the store's lock (the next start opens the same
 * CACHE_DIR), the ports, and every socket, server and timer.
 */
describe('sidecar lifecycle: a failed start leaves nothing open', function () {
  this.timeout(120_000)
  let dir: string
  let env: NodeJS.ProcessEnv
  let ports: number[]
  const log = pino({ level: 'silent' })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2p-cache-lifecycle-'))
    const [http, p2p, data, proxy] = [await freePort(), await freePort(), await freePort(), await freePort()]
    ports = [http, p2p, data, proxy]
    env = {
      CACHE_DIR: join(dir, 'data'),
      CACHE_HTTP_ADDR: `127.0.0.1:${http}`,
      CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${p2p}`,
      CACHE_P2P_DATA_PORT: String(data),
      CACHE_PROXY_ADDR: `127.0.0.1:${proxy}`,
      CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
      CACHE_API_UPSTREAMS: 'github=http://127.0.0.1:1',
      // The bucket client opens nothing until it is used: a part to stop all the same.
      CACHE_S3_URL: 's3://lifecycle-test/cache',
      CACHE_S3_ENDPOINT: 'http://127.0.0.1:1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test'
    }
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  const released = async (baseline: Map<string, number>): Promise<void> => {
    await settled(async () => {
      const now = resources()
      return [...now].filter(([type, n]) => n > (baseline.get(type) ?? 0)).map(([type, n]) => `${type} ×${n - (baseline.get(type) ?? 0)}`)
    }, 'resources still open')
    await settled(async () => (await Promise.all(ports.map(async p => await bindable(p) ? [] : [`port ${p}`]))).flat(), 'ports still bound')
  }

  it('starts every part and stops them all; then, failing at each step in turn, releases what was opened', async () => {
    const config = loadConfig({}, env)
    // After a turn of the loop: mocha arms this test's own timeout once the function returned.
    await new Promise(resolve => setImmediate(resolve))
    const baseline = resources()
    const steps: string[] = []
    const sidecar = await startSidecar(config, log, {
      onStep: name => {
        steps.push(name)
      }
    })
    await sidecar.stop()
    await released(baseline)
    for (const part of ['store', 'private store', 'registry upstreams', 'swarm', 'bucket', 'handoff', 'downloads', 'listeners', 'ready']) {
      assert.ok(steps.includes(part), `${part} is a step (${steps.join(', ')})`)
    }
    for (const step of steps) {
      const injected = new Error(`failure injected at ${step}`)
      await assert.rejects(
        startSidecar(config, log, {
          onStep: name => {
            if (name === step) throw injected
          }
        }),
        (err: unknown) => err === injected
      )
      await released(baseline)
    }
    // The same directory and ports once more, whole.
    const again = await startSidecar(config, log)
    await again.stop()
    await released(baseline)
  })
})
