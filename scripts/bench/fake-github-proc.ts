/**
 * The fake api.github.com (test/fixtures/fake-github.ts) in a process of its own, for the API
 * rows of the bench (api.ts): under load, the upstream (or the baseline) must not share an
 * event loop with the load generator. Started by `startFakeGitHubProcess` through
 * child_process.fork (so with the bench's own `--import tsx`).
 *
 * Environment: BENCH_FAKE_OPTS, the FakeGitHubOptions as JSON; BENCH_FAKE_CLEAR_MS, when set,
 * forgets the recorded requests that often (the fixture keeps every request it has seen, which
 * under a load test is a growing heap and GC work that would slow the baseline down; counts are
 * then only available from the rate-limit buckets).
 *
 * IPC: the child sends `{ ready: true, url }` once listening; a message `{ id, op, args }` is
 * answered with `{ id, result }` or `{ id, error }`. It exits on SIGTERM, or when the bench
 * goes away (the IPC channel closes).
 */
import { startFakeGitHub, type FakeGitHubOptions, type FakeGitHubRequestFilter } from '../../test/fixtures/fake-github.js'

interface Call { id: number, op: string, args: unknown[] }

const send = (msg: unknown): void => { if (process.connected) process.send?.(msg) }

const opts = JSON.parse(process.env.BENCH_FAKE_OPTS ?? '{}') as FakeGitHubOptions
const fake = await startFakeGitHub(opts)
const clearMs = Number(process.env.BENCH_FAKE_CLEAR_MS ?? '0')
if (clearMs > 0) setInterval(() => { fake.clearRequests() }, clearMs).unref()

let stopping = false
const shutdown = (): void => {
  if (stopping) return
  stopping = true
  void fake.stop().finally(() => process.exit(0))
  setTimeout(() => process.exit(0), 2_000).unref()
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
process.on('disconnect', shutdown)

process.on('message', (raw: unknown) => {
  const { id, op, args } = raw as Call
  try {
    let result: unknown
    switch (op) {
      case 'count': result = fake.count((args[0] ?? {}) as FakeGitHubRequestFilter); break // IPC turns undefined into null
      case 'rateLimit': result = fake.rateLimit(String(args[0])); break
      case 'clearRequests': fake.clearRequests(); break
      case 'setBody': fake.setBody(String(args[0]), args[1]); break
      default: throw new Error(`unknown op ${op}`)
    }
    send({ id, result })
  } catch (err) {
    send({ id, error: (err as Error).message })
  }
})

send({ ready: true, url: fake.url })
