/**
 * The "actions" rows of `npm run bench` (issue 26): a cache directory saved by a job on one
 * runner and restored by a job on another, on this host's loopback, side by side in one run:
 *
 *   - the toolkit's own `@actions/cache` saving through sidecar A and restoring through sidecar
 *     B (two sidecars of a private swarm: B takes the archive from A), against `cp -r` of the
 *     directory;
 *   - the archive alone (an uncompressed tar of the directory): uploaded to A as one Put Blob and
 *     downloaded on B through the cache service, against a PUT and a GET of the same file on a
 *     plain `node:http` server.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, request, type Server } from 'node:http'
import { join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { startHerd, type HerdNode } from '../../test/fixtures/herd.js'
import { runtimeToken } from '../../test/fixtures/runtime-token.js'
import { withSectionCleanup } from './cleanup.js'
import { spread, type SectionCtx } from './common.js'
import { median, MiB, ratioOf } from './report.js'

export interface ActionsBenchConfig {
  bytes: number
  files: number
  rounds: number
}

export function actionsBenchConfig (quick: boolean): ActionsBenchConfig {
  return { bytes: (quick ? 64 : 256) * MiB, files: 8, rounds: quick ? 1 : 3 }
}

const CLIENT = resolve(fileURLToPath(import.meta.url), '../../../test/fixtures/actions-cache-client.ts')
const TSX = import.meta.resolve('tsx')
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService'

const run = async (file: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<string> =>
  await new Promise((done, reject) => {
    execFile(file, args, { ...opts, timeout: 600_000, maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`))
      else done(stdout)
    })
  })

const timed = async (fn: () => Promise<unknown>): Promise<number> => {
  const t = performance.now()
  await fn()
  return (performance.now() - t) / 1000
}

/** A job's @actions/cache call on `node`, in workspace `ws`. */
async function job (node: HerdNode, ws: string, token: string, args: string[]): Promise<void> {
  await mkdir(join(ws, '.tmp'), { recursive: true })
  const out = await run(process.execPath, ['--import', TSX, CLIENT, ...args], {
    cwd: ws,
    env: {
      PATH: process.env.PATH,
      HOME: ws,
      GITHUB_WORKSPACE: ws,
      RUNNER_TEMP: join(ws, '.tmp'),
      ACTIONS_CACHE_SERVICE_V2: 'true',
      ACTIONS_RESULTS_URL: `${node.url}/`,
      ACTIONS_RUNTIME_TOKEN: token
    }
  })
  const result = (JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { result?: unknown }).result
  if (result === null || result === -1 || result === undefined) {
    throw new Error(`@actions/cache ${args.join(' ')} did not ${args[0] ?? ''}: ${out.slice(-500)}`)
  }
}

async function twirp (node: HerdNode, token: string, method: string, body: object): Promise<Record<string, unknown>> {
  const r = await fetch(`${node.url}${SERVICE}/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  return await r.json() as Record<string, unknown>
}

/** PUT `file` to `url` (status 2xx), streamed. */
async function put (url: string, file: string): Promise<void> {
  const { size } = await stat(file)
  await new Promise<void>((done, reject) => {
    const req = request(url, { method: 'PUT', headers: { 'content-length': size, 'x-ms-blob-type': 'BlockBlob' } }, res => {
      res.resume()
      res.on('end', () => {
        if ((res.statusCode ?? 0) < 300) done()
        else reject(new Error(`PUT ${url}: ${res.statusCode ?? 0}`))
      })
    })
    req.on('error', reject)
    createReadStream(file).pipe(req)
  })
}

/** GET `url` into `file`. */
async function get (url: string, file: string): Promise<void> {
  const r = await fetch(url)
  if (!r.ok || r.body === null) throw new Error(`GET ${url}: ${r.status}`)
  await pipeline(r.body, createWriteStream(file))
}

/** The plainest `node:http` store: PUT writes the file, GET reads it back. */
async function fileServer (dir: string): Promise<{ server: Server, url: string }> {
  const server = createServer((req, res) => {
    const path = join(dir, 'stored')
    const done = (status: number): void => {
      res.writeHead(status)
      res.end()
    }
    if (req.method === 'PUT') {
      pipeline(req, createWriteStream(path)).then(() => done(201), () => done(500))
      return
    }
    stat(path).then(({ size }) => {
      res.writeHead(200, { 'content-length': size })
      return pipeline(createReadStream(path), res)
    }).catch(() => {
      res.destroy()
    })
  })
  await new Promise<void>(done => server.listen(0, '127.0.0.1', done))
  const address = server.address() as { port: number }
  return { server, url: `http://127.0.0.1:${address.port}/file` }
}

export async function actionsCacheBench (ctx: SectionCtx, cfg: ActionsBenchConfig): Promise<void> {
  const size = `${(cfg.bytes / MiB).toFixed(0)} MiB`
  await withSectionCleanup(ctx, 'actions', async local => {
    const dir = join(ctx.work, 'actions')
    await mkdir(dir, { recursive: true })
    local.add('actions dir', () => rm(dir, { recursive: true, force: true }))
    const herd = await startHerd({
      count: 2,
      env: {
        CACHE_SWARM_KEY: randomBytes(32).toString('hex'),
        CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1',
        CACHE_LOG_LEVEL: 'warn',
        CACHE_MAX_SIZE: '20GB'
      }
    })
    local.add('actions herd', () => herd.destroy())
    const [a, b] = herd.nodes as [HerdNode, HerdNode]
    const files = await fileServer(dir)
    local.add('actions file server', async () => {
      await new Promise(done => files.server.close(done))
    })
    const token = runtimeToken([{ scope: 'refs/heads/main', permission: 3 }])

    const saver = join(dir, 'saver')
    await mkdir(join(saver, 'deps'), { recursive: true })
    for (let i = 0; i < cfg.files; i++) await writeFile(join(saver, 'deps', `f${i}.bin`), randomBytes(cfg.bytes / cfg.files))
    const archive = join(dir, 'deps.tar')
    await run('tar', ['-cf', archive, '-C', saver, 'deps'])

    const rows: Record<'toolkit' | 'copy' | 'service' | 'http', number[]> = { toolkit: [], copy: [], service: [], http: [] }
    for (let round = 0; round < cfg.rounds; round++) {
      const restorer = join(dir, `restore-${round}`)
      await mkdir(restorer, { recursive: true })
      const save = await timed(async () => {
        await job(a, saver, token, ['save', `deps-${round}`, 'deps'])
      })
      const restore = await timed(async () => {
        await job(b, restorer, token, ['restore', `deps-${round}`, '', 'deps'])
      })
      rows.toolkit.push(save + restore)
      rows.copy.push(await timed(async () => await run('cp', ['-r', join(saver, 'deps'), join(dir, `copy-${round}`)])))

      rows.service.push(
        await timed(async () => {
          const created = await twirp(a, token, 'CreateCacheEntry', { key: `tar-${round}`, version: 'bench' })
          await put(String(created.signed_upload_url), archive)
          await twirp(a, token, 'FinalizeCacheEntryUpload', {
            key: `tar-${round}`,
            version: 'bench',
            size_bytes: (await stat(archive)).size
          })
          const found = await twirp(b, token, 'GetCacheEntryDownloadURL', { key: `tar-${round}`, version: 'bench' })
          await get(String(found.signed_download_url), join(dir, 'from-service.tar'))
        })
      )
      rows.http.push(
        await timed(async () => {
          await put(files.url, archive)
          await get(files.url, join(dir, 'from-http.tar'))
        })
      )
      ctx.log(
        `actions: round ${round + 1}: @actions/cache save+restore ${rows.toolkit.at(-1)?.toFixed(2) ?? '-'} s (save ${
          save.toFixed(2)
        }), cp -r ${rows.copy.at(-1)?.toFixed(2) ?? '-'} s; archive through the service ${
          rows.service.at(-1)?.toFixed(2) ?? '-'
        } s, node:http ${rows.http.at(-1)?.toFixed(2) ?? '-'} s`
      )
      for (const p of [restorer, join(dir, `copy-${round}`), join(dir, 'from-service.tar'), join(dir, 'from-http.tar')]) {
        await rm(p, { recursive: true, force: true })
      }
    }
    ctx.samples.actions = { ...rows, size }
    const [toolkit, copy, service, http] = [median(rows.toolkit), median(rows.copy), median(rows.service), median(rows.http)]
    ctx.rows.push({
      metric: `actions: @actions/cache save via A + restore via B, ${size} directory, vs cp -r (loopback)`,
      unit: 's',
      value: toolkit,
      baseline: copy,
      ratio: ratioOf(toolkit, copy),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `toolkit ${spread(rows.toolkit, 2)} (tar and zstd included), cp ${spread(rows.copy, 2)}`
    })
    ctx.rows.push({
      metric: `actions: the ${size} archive uploaded to A and downloaded on B from a peer vs PUT + GET on node:http (loopback)`,
      unit: 's',
      value: service,
      baseline: http,
      ratio: ratioOf(service, http),
      target: '-',
      pass: undefined,
      digits: 2,
      note: `service ${spread(rows.service, 2)}, node:http ${spread(rows.http, 2)}`
    })
  })
}
