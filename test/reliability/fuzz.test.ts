import assert from 'node:assert/strict'
import { ConfigError } from '../../src/errors/config-error.js'
import { parseDuration, parseSize } from '../../src/config/units.js'
import { CLAIM_PROTOCOL } from '../../src/p2p/claim/constants.js'
import { FETCH_PROTOCOL } from '../../src/p2p/constants.js'
import { decodeRequest } from '../../src/p2p/fetch/frames.js'
import { FrameError, MAX_FRAME_ERROR_CHARS } from '../../src/p2p/json-frame.js'
import { recordCid } from '../../src/p2p/content-id.js'
import { apiKey } from '../../src/keys/api-key.js'
import { runTarget, type TargetName } from '../fixtures/fuzz/campaign.js'
import { sidecarMultiaddr, startFuzzEnv, type FuzzEnv } from '../fixtures/fuzz/environment.js'
import { varint, type PeerExchange } from '../fixtures/fuzz/fetch-frames.js'
import { checkConfig, checkExchange, checkHttpCase } from '../fixtures/fuzz/properties.js'
import { sendRaw } from '../fixtures/fuzz/http-wire.js'
import { waitFor } from '../fixtures/wait.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'

/** Fixed: the same cases every run. A failure names its seed; the bench runs more cases of the same targets. */
const SEED = 16
/** Cases per target, sized so the file stays under its 60 s budget on a loaded 2-core machine. */
const RUNS: Record<TargetName, number> = { registry: 300, api: 250, 'peer-frames': 300, config: 2000, 'config-cli': 3 }

/**
 * A target (and a failure's shrinking, where every step is a real request) is stopped after this
 * long, as a failure: several times what a passing target takes on a loaded machine.
 */
const TIME_LIMIT_MS = 90_000

/**
 * Property-based fuzzing of the sidecar's inputs (issue 16), against real processes: the
 * docker-registry upstream with a small image, the fake GitHub API, one sidecar in a private
 * swarm with every blob of the image stored, and a libp2p peer of our own in that swarm.
 * Properties (test/fixtures/fuzz/properties.ts): the process never crashes or hangs; every
 * answer is well-formed HTTP/1.1 (an OCI error body on /v2/) or a frame the protocol's own
 * decoder takes; nothing is stored for a rejected request; the same request gets the same answer.
 */
describe('fuzz: registry, API cache, peer frames and CACHE_* values (fast-check, fixed seed)', function () {
  this.timeout(150_000)
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
  /** A well-framed request whose JSON is `value`. */
  const framed = (protocol: string, value: unknown): PeerExchange => {
    const body = Buffer.from(JSON.stringify(value))
    return { protocol, parts: [varint(body.byteLength), body], body, wellFramed: true, text: JSON.stringify(value).slice(0, 100) }
  }

  // Found by the peer-frames target: zod's message echoes an unknown key, so a request with a
  // long one got a bad_request header whose message was over the 1000 characters the fetch
  // client (and the claim asker) accept: an answer the protocol's own decoder refuses.
  it('regression: a request with a 1000-character unknown field gets an error frame the peer can decode', async () => {
    const e = env as FuzzEnv
    const longKey = 'k'.repeat(1000)
    await checkExchange(e, framed(FETCH_PROTOCOL, { key: e.manifestDigest, [longKey]: true }))
    await checkExchange(e, framed(CLAIM_PROTOCOL, { op: 'claim', key: e.manifestDigest, [longKey]: 1 }))
    const body = Buffer.from(JSON.stringify({ key: 7, [longKey]: true, [`${longKey}2`]: true }))
    assert.throws(() => decodeRequest(body), (err: Error) => err instanceof FrameError && err.message.length <= MAX_FRAME_ERROR_CHARS)
  })

  // Found with long API queries: the sidecar announced records under keys the fetch protocol
  // refuses (a path over 400 characters, an Accept over 200, a `#` in the Accept), so peers
  // that found it as a provider asked in vain (bad_request, or not_found).
  it('regression: an API record whose swarm key peers would refuse is not announced', async () => {
    const e = env as FuzzEnv
    await e.peer.dial(sidecarMultiaddr(e), { signal: AbortSignal.timeout(10_000) })
    const providers = async (key: string): Promise<string[]> => {
      const out: string[] = []
      for await (const p of e.peer.contentRouting.findProviders(recordCid(key), { signal: AbortSignal.timeout(5_000) })) {
        out.push(p.id.toString())
      }
      return out
    }
    const get = async (path: string, accept?: string): Promise<void> => {
      const res = await fetch(`${e.sidecar.url}/github${path}`, {
        headers: accept === undefined ? {} : { accept },
        signal: AbortSignal.timeout(20_000)
      })
      await res.arrayBuffer()
      assert.equal(res.status, 200)
    }
    const longPath = `/repos/acme/public?fuzz-regression=${'p'.repeat(500)}`
    const hashAccept = 'application/vnd.github.x#y+json'
    await get(longPath)
    await get('/repos/acme/public?fuzz-regression=accept', hashAccept)
    await get('/repos/acme/public?fuzz-regression=control')
    // Announced in that order: once the control key is provided, the others would have been.
    await waitFor(
      async () => (await providers(apiKey('github /repos/acme/public?fuzz-regression=control', ''))).includes(e.sidecar.peerId),
      { timeoutMs: 30_000, what: 'the sidecar to provide a valid API key' }
    )
    assert.deepEqual(await providers(apiKey(`github ${longPath}`, '')), [])
    assert.deepEqual(await providers(apiKey('github /repos/acme/public?fuzz-regression=accept', hashAccept)), [])
  })

  // Found by the registry target: node's server drops a CONNECT without a word when nothing
  // listens for it; and a pin path that is not valid percent-encoding was a 500.
  it('regression: CONNECT gets 405, a malformed pin path 400', async () => {
    const e = env as FuzzEnv
    await checkHttpCase(e, { method: 'CONNECT', target: '127.0.0.1:80', headers: [['host', '127.0.0.1:80']] })
    const connect = await sendRaw(
      e.sidecar.port,
      { method: 'CONNECT', target: 'example.com:443', headers: [['host', 'example.com:443']] },
      10_000
    )
    assert.equal(connect.status, 405)
    const pin = await sendRaw(
      e.sidecar.port,
      { method: 'PUT', target: '/api/cache/pins/%E0%A4%A', headers: [['host', '127.0.0.1']] },
      10_000
    )
    assert.equal(pin.status, 400)
    assert.match(pin.body.toString(), /invalid digest/)
  })

  for (const [target, title] of cases) {
    it(`${target}: ${title}`, async () => {
      const figures = await runTarget(target, env, { seed: SEED, numRuns: RUNS[target], timeLimitMs: TIME_LIMIT_MS })
      assert.equal(figures.failed, false, `seed ${SEED}: ${figures.error ?? ''}\ncounterexample: ${figures.counterexample ?? ''}`)
      assert.equal(figures.cases, RUNS[target])
    })
  }
})

describe('fuzz regressions: CACHE_* values', () => {
  // Found by the config target: a size of 400 digits read as Infinity and was accepted as
  // CACHE_MAX_SIZE (an unbounded store) or CACHE_API_MAX_BODY; past 2^53 a number is not what was written.
  it('a size or duration past 2^53 is refused, naming the variable', () => {
    const huge = '9'.repeat(400)
    for (
      const [name, value] of [
        ['CACHE_MAX_SIZE', `${huge}GB`],
        ['CACHE_MAX_SIZE', '9007199254740993'],
        ['CACHE_API_MAX_BODY', huge],
        ['CACHE_API_MAX_BODY', '10000000000000000000kB'],
        ['CACHE_UPSTREAM_TIMEOUT', `${huge}ms`],
        ['CACHE_EVICT_MIN_AGE', `${huge}d`]
      ] as const
    ) {
      const err = checkConfig({ [name]: value })
      assert.ok(err instanceof ConfigError, `${name}=${value.slice(0, 30)}... accepted`)
      assert.equal(err.variable, name)
    }
    assert.equal(parseSize(`${'9'.repeat(400)}GB`), undefined)
    assert.equal(parseSize('9007199254740991'), 9007199254740991)
    assert.equal(parseDuration(`${'9'.repeat(400)}ms`), undefined)
    assert.equal(parseSize('20GB'), 20e9)
  })

  // Found by the config target: a high watermark set at or below the default low one was
  // reported as CACHE_EVICT_LOW_WATERMARK="80%", a variable the user never set.
  it('a high watermark at or below the default low one is reported as CACHE_EVICT_HIGH_WATERMARK', () => {
    const err = checkConfig({ CACHE_EVICT_HIGH_WATERMARK: '50%' })
    assert.ok(err instanceof ConfigError)
    assert.equal(err.variable, 'CACHE_EVICT_HIGH_WATERMARK')
    assert.match(err.message, /CACHE_EVICT_HIGH_WATERMARK="50%".*above CACHE_EVICT_LOW_WATERMARK \(80%\)/)
    const both = checkConfig({ CACHE_EVICT_HIGH_WATERMARK: '0.5', CACHE_EVICT_LOW_WATERMARK: '0.6' })
    assert.equal(both?.variable, 'CACHE_EVICT_LOW_WATERMARK')
  })
})
