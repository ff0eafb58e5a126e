import assert from 'node:assert/strict'
import { runTarget, type TargetName } from '../fixtures/fuzz/campaign.js'
import { startFuzzEnv, type FuzzEnv } from '../fixtures/fuzz/environment.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'

/** Fixed: the same cases every run. A failure names its seed; the bench runs more cases of the same targets. */
const SEED = 16
/** Cases per target, sized so the file stays under its 60 s budget on a loaded 2-core machine. */
const RUNS: Record<TargetName, number> = { registry: 120, api: 100, 'peer-frames': 120, config: 1000, 'config-cli': 3 }

/** A target (and a failure's shrinking) is stopped after this long, as a failure. */
const TIME_LIMIT_MS = 40_000

/**
 * Property-based fuzzing of the sidecar's inputs (issue 16), against real processes: the
 * docker-registry upstream with a small image, the fake GitHub API, one sidecar in a private
 * swarm with every blob of the image stored, and a libp2p peer of our own in that swarm.
 * Properties (test/fixtures/fuzz/properties.ts): the process never crashes or hangs; every
 * answer is well-formed HTTP/1.1 (an OCI error body on /v2/) or a frame the protocol's own
 * decoder takes; nothing is stored for a rejected request; the same request gets the same answer.
 */
describe('fuzz: registry, API cache, peer frames and CACHE_* values (fast-check, fixed seed)', function () {
  this.timeout(120_000)
  let env: FuzzEnv | undefined

  before(async () => {
    env = await startFuzzEnv()
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar: env?.sidecar })
  })

  after(async () => {
    await env?.stop()
  })

  const cases: Array<[TargetName, string]> = [
    ['registry', 'registry paths, names, references, digests, Range, Accept, If-* and ?ns= get well-formed, repeatable answers'],
    ['api', 'API-cache paths, queries and headers get well-formed, repeatable answers'],
    ['peer-frames', 'fetch and claim frames from a peer get a decodable answer or a closed stream, and valid requests are still served'],
    ['config', 'every CACHE_* value gives a valid config or a one-line ConfigError naming the variable'],
    ['config-cli', 'serve refuses bad CACHE_* values with exit 2, one line on stderr, and no CACHE_DIR']
  ]
  for (const [target, title] of cases) {
    it(`${target}: ${title}`, async () => {
      const figures = await runTarget(target, env, { seed: SEED, numRuns: RUNS[target], timeLimitMs: TIME_LIMIT_MS })
      assert.equal(figures.failed, false, `seed ${SEED}: ${figures.error ?? ''}\ncounterexample: ${figures.counterexample ?? ''}`)
      assert.equal(figures.cases, RUNS[target])
    })
  }
})
