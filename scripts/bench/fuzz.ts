/**
 * The bench's longer fuzz campaign (issue 16): the targets of test/reliability/fuzz.test.ts
 * (registry requests, API-cache requests, fetch and claim frames from a peer, CACHE_* values
 * in-process and through `serve`) with more cases, from a seed of the caller's choosing, against
 * one fresh environment (docker-registry with a small image, the fake GitHub API, one sidecar in
 * a private swarm, a libp2p peer). Generators and properties are the test's own
 * (test/fixtures/fuzz/); a failure is reproduced with the same seed and runs.
 *
 * From the shell: node --import tsx -e "import('./scripts/bench/fuzz.ts').then(async m => console.log(JSON.stringify(await m.fuzzCampaign({ runs: 2000, seed: 1 }), null, 2)))"
 */
import { runCampaign, TARGETS, type FuzzFigures, type TargetFigures, type TargetName } from '../../test/fixtures/fuzz/campaign.js'

export type { FuzzFigures, TargetFigures, TargetName }
export { TARGETS }

/**
 * Runs every target `runs` times (config-cli, which starts a process per case, a fiftieth of
 * that) from `seed`. Resolves with cases, failure and duration per target (a failing target
 * carries its shrunk counterexample and what broke); rejects only when the environment can't
 * start (docker-registry missing, no free port).
 */
export async function fuzzCampaign (opts: { runs: number, seed: number }): Promise<FuzzFigures> {
  if (!Number.isSafeInteger(opts.runs) || opts.runs < 1) {
    throw new RangeError(`fuzzCampaign: runs must be a positive integer, got ${opts.runs}`)
  }
  if (!Number.isSafeInteger(opts.seed)) throw new RangeError(`fuzzCampaign: seed must be an integer, got ${opts.seed}`)
  return await runCampaign(opts)
}
