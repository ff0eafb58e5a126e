import { createRequire } from 'node:module'

/**
 * A guard around the xsalsa20 stream cipher that @libp2p/pnet (CACHE_SWARM_KEY) uses, which
 * otherwise crashes a sidecar under ordinary traffic.
 *
 * xsalsa20 1.2.0's WebAssembly build keeps one Memory for every cipher in the process (at most
 * 1000 pages, about 61 MiB) and each cipher caches a Uint8Array view of it. When one cipher
 * grows the Memory (a single update larger than what is left: one pnet message above the
 * initial 640 KiB is enough), every other cipher's view is detached and reads as length 0, so
 * on its next update it "grows" by its whole working size again, which detaches the first
 * one's view, and so on: two ciphers of one connection (inbound and outbound) then grow the
 * Memory on every message until `WebAssembly.Memory.grow(): Maximum memory size exceeded` is
 * thrown from a socket 'data' handler, which kills the process (found by the churn soak,
 * issue 16: a node with a swarm key died within seconds of serving a 5 MiB layer over
 * libp2p). The same stale view also makes finalize() wipe nothing.
 *
 * The guard (on the cipher's shared prototype, once per process) does what the upstream fix
 * (libp2p/js-libp2p#3585, not in a release of @libp2p/pnet yet) does for the first part:
 *  - every update runs in windows of XOR_WINDOW bytes, so the Memory never has to grow for a
 *    big message (the keystream is the same: the cipher is a stream over any chunking);
 *  - before each window (and in realloc and finalize) a stale view is replaced by the current
 *    one, so a growth that does happen (the cipher slots fill the first pages as connections
 *    come and go, since pnet never calls finalize) is paid once, not by every cipher in turn.
 * Still open upstream: pnet never finalizes its ciphers, so each connection keeps 128 bytes of
 * the 61 MiB for good (about 500,000 connections per process lifetime).
 */

/** Bytes handed to the WebAssembly xor at once: well inside the initial 640 KiB Memory. */
export const XOR_WINDOW = 64 * 1024

interface WasmXor {
  _memory: Uint8Array
  update: (input: Uint8Array, output: Uint8Array) => void
  realloc: (size: number) => void
  finalize: () => void
}

interface XSalsa20Cipher {
  _xor: unknown
  update: (input: Uint8Array, output?: Uint8Array) => Uint8Array
  finalize: () => void
}

type XSalsa20Factory = (nonce: Uint8Array, key: Uint8Array) => XSalsa20Cipher

const GUARDED = Symbol.for('p2p-cache.xsalsa20-guard')

export type CipherGuard = 'guarded' | 'already-guarded' | 'not-wasm'

/**
 * The file of the xsalsa20 module @libp2p/pnet loads: resolved from pnet's own location where
 * import.meta.resolve exists (Node), else (a loader without it, e.g. tsx) from this module's.
 */
export function pnetXsalsa20Path (): string {
  const from = typeof import.meta.resolve === 'function' ? import.meta.resolve('@libp2p/pnet') : import.meta.url
  return createRequire(from).resolve('xsalsa20')
}

/** The xsalsa20 module @libp2p/pnet itself loads. */
export function pnetXsalsa20 (): XSalsa20Factory {
  return createRequire(import.meta.url)(pnetXsalsa20Path()) as XSalsa20Factory
}

function isWasmXor (x: unknown): x is WasmXor {
  if (typeof x !== 'object' || x === null) return false
  const o = x as Partial<WasmXor>
  return o._memory instanceof Uint8Array && typeof o.update === 'function' && typeof o.realloc === 'function' &&
    typeof o.finalize === 'function'
}

/**
 * Installs the guard (see the file comment) on the xsalsa20 module pnet uses. Idempotent.
 * Returns 'not-wasm' when that module is not the WebAssembly build this guards (the pure JS
 * fallback, or a changed version): nothing is touched then.
 */
export function guardPnetCipher (factory: XSalsa20Factory = pnetXsalsa20()): CipherGuard {
  const probe = factory(new Uint8Array(24), new Uint8Array(32))
  const inner = probe._xor
  if (!isWasmXor(inner)) {
    probe.finalize()
    return 'not-wasm'
  }
  const proto = Object.getPrototypeOf(inner) as WasmXor & { [GUARDED]?: true }
  if (proto[GUARDED] === true) {
    probe.finalize()
    return 'already-guarded'
  }
  /** The newest view of the shared Memory: every growth goes through realloc, which sets it. */
  let current = inner._memory
  const fresh = (self: WasmXor): void => {
    if (self._memory.buffer !== current.buffer) self._memory = current
  }
  const { update, realloc, finalize } = proto
  proto.realloc = function (this: WasmXor, size: number): void {
    fresh(this)
    realloc.call(this, size)
    current = this._memory
  }
  proto.update = function (this: WasmXor, input: Uint8Array, output: Uint8Array): void {
    for (let start = 0; start < input.length; start += XOR_WINDOW) {
      const end = Math.min(start + XOR_WINDOW, input.length)
      fresh(this)
      update.call(this, input.subarray(start, end), output.subarray(start, end))
    }
  }
  proto.finalize = function (this: WasmXor): void {
    fresh(this)
    finalize.call(this)
  }
  proto[GUARDED] = true
  probe.finalize()
  return 'guarded'
}
