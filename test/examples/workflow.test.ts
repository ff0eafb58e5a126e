import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Octokit } from '@octokit/rest'
import { parse as parseYaml } from 'yaml'
import { OPTIONS } from '../../src/config/options.js'
import { startRegistry, type Registry } from '../fixtures/registry.js'
import { buildImage } from '../fixtures/oci-image.js'
import { pushLayout } from '../fixtures/skopeo.js'
import { runCli, startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed, stopAll } from '../fixtures/swarm.js'
import { startFakeGitHub, type FakeGitHub } from '../fixtures/fake-github.js'
import { run } from '../fixtures/netns.js'
import {
  bashSyntax,
  dockerClientCheck,
  dockerClientMissing,
  dockerCommands,
  parseDockerRun,
  readExample,
  shellWords
} from './example-files.js'

interface Step {
  name?: string
  uses?: string
  run?: string
  with?: Record<string, string>
  env?: Record<string, string>
  if?: string
  'continue-on-error'?: boolean
}
interface Job {
  'runs-on': string | string[]
  steps: Step[]
  env?: Record<string, string>
}
interface Workflow {
  name?: string
  on: unknown
  permissions?: Record<string, string>
  env?: Record<string, string>
  defaults?: { run?: { shell?: string } }
  jobs: Record<string, Job>
}

const TOKEN = 'ghs_p2pCacheWorkflowTest0123456789abcdefA'
const REPOSITORY = 'acme/public'
/** Images the workflow names; the local registry serves them as Docker Hub's library/<name>. */
const IMAGES = [['alpine', '3.20'], ['node', '20-slim']] as const

/** The ${{ ... }} expressions the workflow uses, as the runner would evaluate them here. */
function evaluate (text: string, ctx: { env: Record<string, string> }): string {
  return text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_m, expr: string) => {
    if (expr === 'github.token') return TOKEN
    if (expr === 'github.repository') return REPOSITORY
    const env = /^env\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(expr)
    if (env !== null && ctx.env[env[1] as string] !== undefined) return ctx.env[env[1] as string] as string
    throw new Error(`the test does not know the expression \${{ ${expr} }}: teach evaluate() what the runner gives it`)
  })
}

/**
 * examples/github-actions/ci.yml read as a runner would run it on a self-hosted runner whose
 * host runs a sidecar: every `run:` step without docker is run by bash (-eo pipefail, as
 * `shell: bash` does) against a real sidecar, the github-script step's script is run with a real
 * Octokit at its base-url, `docker run ... p2p-cache <args>` steps run the same CLI arguments
 * (the image's entrypoint is the CLI, and with --network host the URL is the same), and every
 * docker command is checked by the real docker client. The sidecar's upstreams are the local
 * docker-registry (as docker.io) and the GitHub stand-in.
 */
describe('examples/github-actions/ci.yml', function () {
  this.timeout(90_000)
  let wf: Workflow
  let work: string
  let registry: Registry
  let gh: FakeGitHub
  let side: SidecarProcess
  /** The workflow's env, pointed at this test's sidecar. */
  let wfEnv: Record<string, string>

  before(async () => {
    wf = parseYaml(await readExample('github-actions', 'ci.yml')) as Workflow
    work = await mkdtemp(join(tmpdir(), 'p2p-cache-ex-wf-'))
    registry = await startRegistry()
    for (const [name, tag] of IMAGES) {
      const layout = join(work, `layout-${name}`)
      await buildImage(layout, { tag, layers: 1, layerSize: 64 * 1024 })
      await pushLayout(layout, tag, registry.host, `library/${name}`)
    }
    gh = await startFakeGitHub({ tokens: { [TOKEN]: {} } })
    side = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: `docker.io=${registry.url}`, CACHE_API_UPSTREAMS: `github=${gh.url}` })
    wfEnv = { P2P_CACHE_URL: side.url, P2P_CACHE_HOST: side.host }
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: side })
  })

  after(async () => {
    await stopAll([side, gh, registry])
    await rm(work, { recursive: true, force: true })
  })

  it('is a workflow: triggers, jobs on self-hosted runners, steps that each use an action or run bash', () => {
    assert.equal(typeof wf.name, 'string')
    assert.ok(wf.on !== undefined && wf.on !== null, 'on:')
    assert.deepEqual(wf.permissions, { contents: 'read' })
    assert.equal(wf.defaults?.run?.shell, 'bash')
    const jobs = Object.entries(wf.jobs)
    assert.ok(jobs.length >= 1)
    for (const [id, job] of jobs) {
      const labels = [job['runs-on']].flat()
      assert.ok(labels.includes('self-hosted'), `${id} runs-on ${JSON.stringify(job['runs-on'])}`)
      assert.ok(Array.isArray(job.steps) && job.steps.length > 0)
      for (const step of job.steps) {
        assert.ok((step.uses === undefined) !== (step.run === undefined), `exactly one of uses/run: ${JSON.stringify(step)}`)
        if (step.uses !== undefined) assert.match(step.uses, /^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[\w.-]+$/)
        const known = new Set([
          'name',
          'uses',
          'run',
          'with',
          'env',
          'if',
          'continue-on-error',
          'id',
          'shell',
          'timeout-minutes',
          'working-directory'
        ])
        for (const key of Object.keys(step)) assert.ok(known.has(key), `unknown step key ${key}`)
      }
    }
  })

  it("points at the sidecar's default address, and every URL in it is the sidecar's", async () => {
    const def = OPTIONS.httpAddr.default
    assert.deepEqual(wf.env, { P2P_CACHE_URL: `http://${def}`, P2P_CACHE_HOST: def })
    const text = await readExample('github-actions', 'ci.yml')
    const urls = [...text.matchAll(/https?:\/\/[^\s"'`)]+/g)].map(m => m[0])
    assert.ok(urls.length >= 1)
    assert.deepEqual(urls.filter(u => !u.startsWith(`http://${def}`)), [], "no URL but the sidecar's")
  })

  it('every run: script parses (bash -n)', async () => {
    for (const [, job] of Object.entries(wf.jobs)) {
      for (const step of job.steps.filter(s => s.run !== undefined)) {
        const script = evaluate(step.run as string, { env: wfEnv })
        const r = await bashSyntax(script)
        assert.equal(r.code, 0, `${step.name ?? ''}: ${r.stderr}`)
      }
    }
  })

  it('runs on a sidecar: wait, warm, pulls through the mirror, API calls through the cache, stats', async () => {
    const [job] = Object.values(wf.jobs)
    assert.ok(job !== undefined)
    const runnerEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: work,
      RUNNER_TEMP: work,
      GITHUB_REPOSITORY: REPOSITORY,
      GITHUB_API_URL: 'https://api.github.com' // what the runner sets; the steps must not rely on it
    }
    const log: string[] = []
    // Without a docker client, the docker commands are left to static.test.ts's skip notice.
    const noDocker = await dockerClientMissing()
    for (const step of job.steps) {
      const name = step.name ?? step.uses ?? step.run ?? ''
      const env: Record<string, string> = { ...wfEnv }
      for (const [k, v] of Object.entries({ ...job.env, ...step.env })) env[k] = evaluate(v, { env: wfEnv })

      if (step.uses?.startsWith('actions/checkout@') === true) continue
      if (step.uses?.startsWith('actions/github-script@') === true) {
        // github-script runs `script` as the body of an async function of (github, context, core, ...)
        // with github = an Octokit at base-url, authenticated with github.token.
        const baseUrl = evaluate(step.with?.['base-url'] ?? '', { env: wfEnv })
        assert.equal(baseUrl, `${side.url}/github`)
        const github = new Octokit({ auth: TOKEN, baseUrl, log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} } })
        const [owner, repo] = REPOSITORY.split('/')
        const info: string[] = []
        const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new(
          ...args: string[]
        ) => (...a: unknown[]) => Promise<unknown>
        await new AsyncFunction('github', 'context', 'core', step.with?.script ?? '')(
          github,
          { repo: { owner, repo } },
          {
            info: (m: string) => {
              info.push(m)
            }
          }
        )
        assert.deepEqual(info, [`${REPOSITORY}: X-Cache MISS`], name)
        log.push(`${name}: ${info.join(' ')}`)
        continue
      }
      assert.ok(step.run !== undefined, `unhandled step ${name}`)
      const script = evaluate(step.run, { env: wfEnv })
      const docker = dockerCommands(script)
      if (docker.length > 0) {
        for (const command of docker) {
          if (noDocker === undefined) {
            const checked = await dockerClientCheck(command, { ...runnerEnv, ...env })
            assert.ok(checked.accepted, `${name}: ${command}\n${checked.stderr}`)
          }
          const words = await shellWords(command, { ...runnerEnv, ...env })
          if (words[1] !== 'run') continue
          const { image, command: args } = parseDockerRun(words.slice(2))
          assert.equal(image, 'p2p-cache')
          const r = await runCli(args, {}, { timeoutMs: 60_000 })
          assert.equal(r.code, 0, `${name}: p2p-cache ${args.join(' ')}\n${r.stdout}${r.stderr}`)
          log.push(`${name}: p2p-cache ${args[0] ?? ''} exit 0`)
        }
        continue
      }
      const r = await run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], {
        env: { ...runnerEnv, ...env },
        timeoutMs: 60_000
      })
      assert.equal(r.code, 0, `${name}: exit ${r.code}\n${r.stdout}${r.stderr}`)
      log.push(`${name}: ${r.stdout.trim().replace(/\s+/g, ' ')}`)
    }

    const stats = await side.stats()
    // warm stored both images; the skopeo pull was served from the store.
    assert.ok((stats.stores ?? 0) >= 6, JSON.stringify(stats))
    assert.ok((stats.hits ?? 0) >= 3, JSON.stringify(stats))
    assert.equal(gh.count({ path: `/repos/${REPOSITORY}` }), 2, 'github-script and curl each asked once')
    assert.equal(gh.count({ path: `/repos/${REPOSITORY}`, status: 304 }), 1, 'the second was a 304')
    assert.ok(log.some(l => /X-Cache: REVALIDATED/i.test(l)), log.join('\n'))
  })

  it('every sidecar URL in the file, comments included, is a route the sidecar answers 200', async () => {
    const text = await readExample('github-actions', 'ci.yml')
    const paths = new Set([...text.matchAll(/(?:\$P2P_CACHE_URL|\$\{\{ env\.P2P_CACHE_URL \}\})(\/[^\s"'`)]*)?/g)].map(m => m[1] ?? ''))
    assert.ok(paths.size >= 4, [...paths].join(' '))
    for (const path of paths) {
      // An API base (base-url, GITHUB_API_URL) is asked for the repository, as Octokit would.
      const concrete = (path === '/github' ? '/github/repos/$GITHUB_REPOSITORY' : path).replace('$GITHUB_REPOSITORY', REPOSITORY)
      if (concrete === '') continue // --url "$P2P_CACHE_URL": the CLI runs above used it
      const res = await fetch(`${side.url}${concrete}`, {
        headers: { authorization: `token ${TOKEN}` },
        signal: AbortSignal.timeout(30_000)
      })
      const body = await res.text()
      assert.equal(res.status, 200, `${path}: ${body}`)
    }
  })
})
