/**
 * Teardown that runs once, in reverse order of registration, whether the bench finishes,
 * throws, is interrupted (SIGINT/SIGTERM) or overruns its time budget.
 */
export class Cleanup {
  private readonly steps: Array<{ what: string, fn: () => Promise<void> }> = []
  private running: Promise<void> | undefined

  add (what: string, fn: () => Promise<void>): void {
    this.steps.push({ what, fn })
  }

  /** True once teardown has begun (a failure after that is a consequence, not the cause). */
  get started (): boolean {
    return this.running !== undefined
  }

  run (): Promise<void> {
    this.running ??= (async () => {
      // Popping (not iterating) also runs steps registered while teardown is under way.
      for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
        try {
          await withTimeout(step.fn(), 20_000, `cleanup: ${step.what}`)
        } catch (err) {
          console.error(`cleanup: ${step.what} failed: ${(err as Error).message}`)
        }
      }
    })()
    return this.running
  }
}

export function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Signals and an overall deadline both clean up and exit. Returns a function that disarms
 * them (call it after the normal cleanup).
 */
export function guard (cleanup: Cleanup, deadlineMs: number): () => void {
  const abort = (why: string, code: number): void => {
    console.error(`\nbench: ${why}; cleaning up`)
    void cleanup.run().finally(() => process.exit(code))
  }
  const onSigint = (): void => abort('interrupted', 130)
  const onSigterm = (): void => abort('terminated', 143)
  process.once('SIGINT', onSigint)
  process.once('SIGTERM', onSigterm)
  const timer = setTimeout(() => abort(`over the ${Math.round(deadlineMs / 1000)} s time budget`, 2), deadlineMs)
  return () => {
    clearTimeout(timer)
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
  }
}

/** Runs `body` with a teardown of its own, also reachable from the run's (signals, deadline). */
export async function withSectionCleanup (
  ctx: { cleanup: Cleanup, log: (msg: string) => void },
  what: string,
  body: (local: Cleanup) => Promise<void>
): Promise<void> {
  const local = new Cleanup()
  ctx.cleanup.add(what, () => local.run())
  try {
    await body(local)
  } finally {
    const t = performance.now()
    await local.run()
    ctx.log(`${what}: torn down in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
}
