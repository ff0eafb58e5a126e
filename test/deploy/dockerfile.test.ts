import assert from 'node:assert/strict'
import { chmod, cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load.js'
import { OPTIONS } from '../../src/config/options.js'
import { spawnManaged, type ManagedProcess } from '../fixtures/child.js'
import { TEST_NODE_VERSIONS } from '../fixtures/node-releases.js'
import { run } from '../fixtures/netns.js'
import { freePort } from '../fixtures/ports.js'
import { waitFor } from '../fixtures/wait.js'

const ROOT = new URL('../../', import.meta.url).pathname
const KNOWN_ENV = new Set(Object.values(OPTIONS).map(o => o.env))

interface Instruction {
  op: string
  args: string
}
interface Stage {
  from: string
  name?: string
  steps: Instruction[]
}

/** Dockerfile → stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile (text: string): { args: Instruction[], stages: Stage[] } {
  const logical = text.replace(/\\\n/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  const args: Instruction[] = []
  const stages: Stage[] = []
  for (const line of logical) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    const ins = { op: op.toUpperCase(), args: rest.replace(/\s+/g, ' ') }
    if (ins.op === 'FROM') {
      const [from = '', , name] = ins.args.split(' ')
      stages.push({ from, ...(name !== undefined ? { name } : {}), steps: [] })
    } else if (stages.length === 0) {
      args.push(ins)
    } else {
      stages[stages.length - 1]?.steps.push(ins)
    }
  }
  return { args, stages }
}

/** `ENV A=1 B=2` → { A: '1', B: '2' } */
function envOf (stage: Stage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const s of stage.steps.filter(s => s.op === 'ENV')) {
    for (const [, k = '', v = ''] of s.args.matchAll(/(\w+)=(\S+)/g)) out[k] = v
  }
  return out
}

function one (stage: Stage, op: string): string {
  const found = stage.steps.filter(s => s.op === op)
  assert.equal(found.length, 1, `the runtime stage has one ${op}`)
  return found[0]?.args ?? ''
}

describe('Dockerfile (checked without a Docker engine)', function () {
  this.timeout(60_000)
  let parsed: ReturnType<typeof parseDockerfile>
  let runtime: Stage

  before(async () => {
    parsed = parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8'))
    const last = parsed.stages[parsed.stages.length - 1]
    assert.ok(last !== undefined, 'the Dockerfile has a FROM')
    runtime = last
  })

  it('is multi-stage: dev dependencies and the compiler stay in the build stage', () => {
    assert.ok(parsed.stages.length >= 2, 'a build stage and a runtime stage')
    const build = parsed.stages[0]
    assert.ok(build?.name !== undefined, 'the build stage is named')
    assert.ok(build.steps.some(s => s.op === 'RUN' && s.args.includes('npm ci')), 'the build stage installs with npm ci (the lock file)')
    assert.ok(build.steps.some(s => s.op === 'RUN' && s.args.includes('npm run build')), 'the build stage compiles')
    assert.ok(build.steps.some(s => s.op === 'RUN' && /npm prune --omit=dev/.test(s.args)), 'dev dependencies are pruned before the copy')
    const copies = runtime.steps.filter(s => s.op === 'COPY')
    assert.ok(
      copies.length > 0 && copies.every(c => c.args.startsWith(`--from=${build.name}`)),
      'the runtime stage copies only from the build stage'
    )
    assert.deepEqual(copies.map(c => c.args.split(' ')[1]).sort(), ['/app/dist', '/app/node_modules', '/app/package.json'])
    // Both stages run the same Node.js, so the native addon built/fetched in one loads in the other.
    assert.equal(build.from, runtime.from)
    const image = parsed.args.find(a => a.args.startsWith('NODE_IMAGE='))?.args.split('=')[1] ?? ''
    assert.match(image, /^node:\d+-bookworm-slim$/, 'a slim glibc Node.js image (classic-level ships glibc prebuilds)')
    const newest = Math.max(...TEST_NODE_VERSIONS.map(v => Number(v.split('.')[0])))
    assert.equal(
      Number(/\d+/.exec(image)?.[0]),
      newest,
      'the newest LTS line the tests run the sidecar under (test/deploy/node-lts.test.ts)'
    )
  })

  it('runs as an unprivileged user, with the contract the README promises', () => {
    const user = one(runtime, 'USER')
    assert.ok(user !== 'root' && user !== '0' && user !== '', `USER ${user} is not root`)
    const env = envOf(runtime)
    assert.equal(env.CACHE_HTTP_ADDR, '0.0.0.0:9080')
    assert.equal(env.CACHE_DIR, '/data')
    assert.deepEqual(one(runtime, 'VOLUME'), '["/data"]')
    assert.deepEqual(one(runtime, 'EXPOSE').split(' ').sort(), ['9000', '9001', '9080'])
    assert.equal(one(runtime, 'ENTRYPOINT'), '["p2p-cache"]')
    assert.equal(one(runtime, 'CMD'), '["serve"]')
    assert.match(one(runtime, 'HEALTHCHECK'), /CMD \["p2p-cache", "healthcheck"\]$/)
    assert.ok(
      runtime.steps.some(s => s.op === 'RUN' && s.args.includes('ln -s /app/dist/cli/main.js /usr/local/bin/p2p-cache')),
      'p2p-cache is on PATH'
    )
    assert.ok(runtime.steps.some(s => s.op === 'RUN' && s.args.includes('chown node:node /data')), 'the user owns the data dir')
  })

  it('sets only variables the sidecar knows, with values it accepts', () => {
    const env = envOf(runtime)
    const cache = Object.keys(env).filter(k => k.startsWith('CACHE_'))
    assert.deepEqual(cache.filter(k => !KNOWN_ENV.has(k)), [])
    const config = loadConfig({}, env)
    assert.equal(config.httpAddr.host, '0.0.0.0')
    assert.equal(config.dir, '/data')
  })

  it('.dockerignore sends what the COPY lines read and leaves the rest out', async () => {
    const ignore = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n').map(l => l.trim()).filter(l =>
      l !== '' && !l.startsWith('#')
    )
    assert.equal(ignore[0], '*', 'everything is excluded first')
    const kept = ignore.filter(l => l.startsWith('!')).map(l => l.slice(1).replace(/\/$/, ''))
    const sources = parsed.stages.flatMap(s => s.steps).filter(s => s.op === 'COPY' && !s.args.startsWith('--from')).flatMap(s =>
      s.args.split(' ').slice(0, -1)
    )
    for (const src of sources) assert.ok(kept.includes(src.replace(/\/$/, '')), `${src} is sent to the build`)
    assert.deepEqual(kept.sort(), [...new Set(sources)].sort(), 'and nothing else (no node_modules, .git, test data or a local .p2p-cache)')
  })

  // The runtime stage holds package.json, the production node_modules and dist/. Rebuild that
  // tree here the way the build stage does (npm prune --omit=dev, no scripts) and run the
  // image's entrypoint and health check from it, as the image's unprivileged user when root.
  describe('the runtime tree (package.json + production node_modules + dist)', () => {
    let app: string
    let data: string
    let serve: ManagedProcess | undefined
    let env: NodeJS.ProcessEnv

    before(async function () {
      this.timeout(60_000)
      app = await mkdtemp(join(tmpdir(), 'p2p-cache-image-'))
      await chmod(app, 0o755) // /app in the image is readable by the node user
      for (const f of ['package.json', 'package-lock.json']) await cp(join(ROOT, f), join(app, f))
      await cp(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true })
      // Hard links: a copy of node_modules in a second (prune only unlinks); a real copy across filesystems.
      if ((await run('cp', ['-al', join(ROOT, 'node_modules'), join(app, 'node_modules')])).code !== 0) {
        await cp(join(ROOT, 'node_modules'), join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true })
      }
      const pruned = await run('npm', ['prune', '--omit=dev', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], {
        cwd: app,
        timeoutMs: 60_000
      })
      assert.equal(pruned.code, 0, pruned.stderr)
      await chmod(join(app, 'dist/cli/main.js'), 0o755)
      data = join(app, 'data')
      await mkdir(data)
      if (process.getuid?.() === 0) await run('chown', ['-R', '1000:1000', data])
      env = {
        PATH: process.env.PATH,
        HOME: data,
        NODE_ENV: 'production',
        CACHE_DIR: data,
        CACHE_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
        CACHE_LISTEN_ADDRS: `/ip4/127.0.0.1/tcp/${await freePort()}`,
        CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
        CACHE_API_UPSTREAMS: 'github=http://127.0.0.1:1'
      }
    })

    after(async () => {
      await serve?.stop()
      if (app !== undefined) await rm(app, { recursive: true, force: true })
    })

    it('has no dev dependency left', async () => {
      const res = await run('node', ['-e', 'import("tsx").then(() => process.exit(1), () => process.exit(0))'], { cwd: app })
      assert.equal(res.code, 0, 'tsx (a dev dependency) is not in the runtime tree')
    })

    it('serves, and `p2p-cache healthcheck` follows it up and down', async () => {
      const asUser = process.getuid?.() === 0 ? { uid: 1000, gid: 1000 } : {}
      const lines: string[] = []
      serve = spawnManaged(process.execPath, [join(app, 'dist/cli/main.js'), 'serve'], {
        cwd: app,
        env,
        ...asUser,
        onLine: line => {
          lines.push(line)
        }
      })
      await waitFor(() => {
        if (serve?.isRunning() !== true) throw new Error(`serve exited: ${serve?.tail(20) ?? ''}`)
        return lines.some(l => l.includes('"p2p-cache ready"'))
      }, { timeoutMs: 20_000, what: 'the sidecar from the runtime tree to be ready' })
      const up = await run(process.execPath, [join(app, 'dist/cli/main.js'), 'healthcheck'], { cwd: app, env })
      assert.equal(up.code, 0, up.stderr)
      await serve.stop()
      const down = await run(process.execPath, [join(app, 'dist/cli/main.js'), 'healthcheck'], { cwd: app, env })
      assert.equal(down.code, 1)
      assert.match(down.stderr, /no answer from http:\/\/127\.0\.0\.1:\d+\/healthz/)
    })
  })
})
