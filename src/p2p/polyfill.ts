// libp2p 3 and its dependencies call Promise.withResolvers, which Node 20 lacks (Node 22 has it).
// Imported for its side effect before any libp2p module runs.
interface Resolvers {
  promise: Promise<unknown>
  resolve: (value: unknown) => void
  reject: (reason?: unknown) => void
}

const P = Promise as unknown as { withResolvers?: () => Resolvers }
if (typeof P.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers (): Resolvers {
      let resolve!: (value: unknown) => void
      let reject!: (reason?: unknown) => void
      const promise = new Promise<unknown>((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}

export {}
