import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { guardPnetCipher, pnetXsalsa20, XOR_WINDOW } from '../../../src/p2p/pnet-cipher.js'

/**
 * The guard around pnet's xsalsa20 (issue 16). The real module is checked against known answers
 * of the unguarded library (computed once with xsalsa20 1.2.0 in a process that never loaded the
 * guard); the guard's logic against a fake of the WebAssembly build that, like the real one,
 * shares one Memory between ciphers, detaches every cached view when it grows, and has a maximum.
 * test/p2p/pnet-cipher.test.ts keeps the process-level checks on the real module.
 */

const NONCE = Buffer.alloc(24, 7)
const KEY = Buffer.alloc(32, 9)
/** First 32 keystream bytes of xsalsa20(NONCE, KEY), unguarded. */
const KEYSTREAM_32 = 'c0ea9c2619c7f345fdcb82fdf322325d17f5a3e400bb1f6d48b25908e7581377'
/** sha256 of the unguarded ciphertext of plaintext(3 * 64 KiB + 12345), in one update. */
const CIPHERTEXT_SHA256 = '72d5731d702b0af67ab9d7f3fdcf91395f2abd05d8aae6adb9bfe00504d0548c'

function plaintext (n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + (i >> 8)) & 0xff
  return out
}

const PAGE = 64 * 1024
/** Where the fake, like xsalsa20's WASM build, stages input (after the cipher slots). */
const HEAD = 144

/**
 * A fake xsalsa20 module shaped like the WebAssembly build: every cipher caches a view of one
 * shared Memory; `realloc` grows the Memory by the pages the caller's view says are missing and
 * detaches all older views (they read as length 0); growing past `maxPages` throws as
 * WebAssembly does. The "cipher" XORs with its key's first byte, so outputs are checkable.
 */
function fakeWasmModule (maxPages = 30): { factory: Parameters<typeof guardPnetCipher>[0] & {}, grows: () => number, updates: number[] } {
  const memory = { buffer: new ArrayBuffer(10 * PAGE) }
  let grows = 0
  const updates: number[] = []
  class WasmXor {
    _memory = new Uint8Array(memory.buffer)
    constructor (readonly k: number) {}
    realloc (size: number): void {
      const pages = Math.ceil(Math.abs(size - this._memory.length) / PAGE)
      const old = memory.buffer
      if (old.byteLength / PAGE + pages > maxPages) throw new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded')
      const next = new ArrayBuffer(old.byteLength + pages * PAGE)
      new Uint8Array(next).set(new Uint8Array(old))
      structuredClone(old, { transfer: [old] })
      memory.buffer = next
      grows++
      this._memory = new Uint8Array(next)
    }

    update (input: Uint8Array, output: Uint8Array): void {
      updates.push(input.length)
      if (HEAD + input.length >= this._memory.length) this.realloc(HEAD + input.length)
      this._memory.set(input, HEAD)
      for (let i = 0; i < input.length; i++) output[i] = (this._memory[HEAD + i] ?? 0) ^ this.k
    }

    finalize (): void {}
  }
  const factory = (
    _nonce: Uint8Array,
    key: Uint8Array
  ): { _xor: unknown, update: (input: Uint8Array, output?: Uint8Array) => Uint8Array, finalize: () => void } => {
    const xor = new WasmXor(key[0] ?? 0)
    return {
      _xor: xor,
      update: (input, output = new Uint8Array(input.length)) => {
        if (input.length > 0) xor.update(input, output)
        return output
      },
      finalize: () => {
        xor.finalize()
      }
    }
  }
  return { factory, grows: () => grows, updates }
}

/** The churn pattern of issue 16: one big message, then both ciphers of a connection in turn. */
function churn (factory: ReturnType<typeof fakeWasmModule>['factory']): void {
  const inbound = factory(NONCE, Buffer.alloc(32, 1))
  const outbound = factory(NONCE, Buffer.alloc(32, 2))
  inbound.update(Buffer.alloc(1024 * 1024))
  for (let i = 0; i < 200; i++) {
    inbound.update(Buffer.alloc(1024))
    outbound.update(Buffer.alloc(1024))
  }
}

describe('pnet cipher guard (CACHE_SWARM_KEY, issue 16)', () => {
  it('the fake reproduces the crash without the guard: two ciphers grow the shared Memory in turn until its maximum', () => {
    const unguarded = fakeWasmModule()
    assert.throws(() => {
      churn(unguarded.factory)
    }, /Maximum memory size exceeded/)
  })

  it('with the guard the same traffic never grows the Memory: big updates go through in XOR_WINDOW pieces', () => {
    const fake = fakeWasmModule()
    assert.equal(guardPnetCipher(fake.factory), 'guarded')
    churn(fake.factory)
    assert.equal(fake.grows(), 0)
    assert.ok(Math.max(...fake.updates) <= XOR_WINDOW)
  })

  it('windowing changes no byte of the output', () => {
    const fake = fakeWasmModule()
    guardPnetCipher(fake.factory)
    const input = plaintext(3 * XOR_WINDOW + 5)
    const out = fake.factory(NONCE, Buffer.alloc(32, 0x5a)).update(input)
    assert.deepEqual(Buffer.from(out), Buffer.from(input.map(b => b ^ 0x5a)))
    assert.deepEqual(fake.updates.slice(-4), [XOR_WINDOW, XOR_WINDOW, XOR_WINDOW, 5])
  })

  it('after one cipher grows the Memory, the others pick up the new view instead of growing it again', () => {
    const fake = fakeWasmModule()
    guardPnetCipher(fake.factory)
    const a = fake.factory(NONCE, Buffer.alloc(32, 1))
    const b = fake.factory(NONCE, Buffer.alloc(32, 2))
    const inner = a._xor as { realloc: (size: number) => void }
    inner.realloc(12 * PAGE)
    assert.equal(fake.grows(), 1)
    for (let i = 0; i < 50; i++) {
      b.update(Buffer.alloc(1024))
      a.update(Buffer.alloc(1024))
    }
    assert.equal(fake.grows(), 1)
  })

  it('guarding is idempotent, and a cipher that is not the WebAssembly build is left alone', () => {
    const fake = fakeWasmModule()
    assert.equal(guardPnetCipher(fake.factory), 'guarded')
    assert.equal(guardPnetCipher(fake.factory), 'already-guarded')
    let finalized = 0
    const jsOnly = (): { _xor: unknown, update: (input: Uint8Array) => Uint8Array, finalize: () => void } => ({
      _xor: { update: () => {}, finalize: () => {} },
      update: i => i,
      finalize: () => {
        finalized++
      }
    })
    assert.equal(guardPnetCipher(jsOnly), 'not-wasm')
    assert.equal(finalized, 1, 'the probe cipher is finalized')
  })

  describe('on the xsalsa20 module @libp2p/pnet loads', () => {
    before(() => {
      assert.notEqual(guardPnetCipher(), 'not-wasm', 'pnet loads the WebAssembly build the guard is for')
    })

    it("the keystream is the unguarded library's: known answer for the first 32 bytes", () => {
      const x = pnetXsalsa20()(NONCE, KEY)
      assert.equal(Buffer.from(x.update(Buffer.alloc(32))).toString('hex'), KEYSTREAM_32)
      x.finalize()
    })

    it("any chunking, across window edges, gives the unguarded library's ciphertext", () => {
      const n = 3 * XOR_WINDOW + 12345
      const p = plaintext(n)
      for (const chunk of [1000, XOR_WINDOW - 1, XOR_WINDOW + 1, n]) {
        const x = pnetXsalsa20()(NONCE, KEY)
        const parts: Uint8Array[] = []
        for (let i = 0; i < n; i += chunk) parts.push(x.update(p.subarray(i, Math.min(i + chunk, n))))
        x.finalize()
        assert.equal(createHash('sha256').update(Buffer.concat(parts)).digest('hex'), CIPHERTEXT_SHA256, `chunks of ${chunk} bytes`)
      }
    })
  })
})
