import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { guardPnetCipher, pnetXsalsa20, pnetXsalsa20Path, XOR_WINDOW } from '../../src/p2p/pnet-cipher.js'

/**
 * Issue 16 (churn soak): with CACHE_SWARM_KEY, pnet's xsalsa20 (WebAssembly, one Memory shared
 * by every cipher in the process) crashed the sidecar with `WebAssembly.Memory.grow(): Maximum
 * memory size exceeded` once one message had grown the Memory: every other cipher's cached view
 * was detached and each of them grew it again on its next update, in turn, until the limit.
 * src/p2p/pnet-cipher.ts guards the cipher; these are its regression tests, on the real module.
 */

const NONCE = Buffer.alloc(24, 7)
const KEY = Buffer.alloc(32, 9)

/** Deterministic plaintext of `n` bytes. */
function plaintext (n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + (i >> 8)) & 0xff
  return out
}

/** sha256 of the ciphertext of plaintext(n), computed by the unguarded library in a fresh process, in one update. */
async function unguardedReference (n: number): Promise<string> {
  const script = `
    const x = require(${JSON.stringify(pnetXsalsa20Path())})(Buffer.alloc(24, 7), Buffer.alloc(32, 9))
    const p = Buffer.alloc(${n}); for (let i = 0; i < ${n}; i++) p[i] = (i * 31 + (i >> 8)) & 0xff
    process.stdout.write(require('node:crypto').createHash('sha256').update(x.update(p)).digest('hex'))`
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

describe('pnet cipher guard (CACHE_SWARM_KEY; issue 16 churn soak)', function () {
  this.timeout(60_000)

  before(() => {
    assert.notEqual(guardPnetCipher(), 'not-wasm', 'the xsalsa20 that @libp2p/pnet loads is the WebAssembly build the guard is for')
    assert.equal(guardPnetCipher(), 'already-guarded', 'guarding twice is a no-op')
  })

  it('two ciphers keep working after a 1 MiB message grew the shared Memory (was: Maximum memory size exceeded after ~500 updates)', () => {
    const xsalsa20 = pnetXsalsa20()
    const inbound = xsalsa20(NONCE, KEY)
    const outbound = xsalsa20(Buffer.alloc(24, 1), KEY)
    inbound.update(Buffer.alloc(1024 * 1024))
    const small = Buffer.alloc(1024)
    for (let i = 0; i < 20_000; i++) {
      inbound.update(small)
      outbound.update(small)
    }
    // A message above the old 61 MiB ceiling goes through too (in windows).
    outbound.update(Buffer.alloc(70 * 1024 * 1024))
    inbound.finalize()
    outbound.finalize()
  })

  it('the keystream is unchanged: any chunking gives what the unguarded library gives in one update', async () => {
    const n = 3 * XOR_WINDOW + 12345
    const want = await unguardedReference(n)
    const p = plaintext(n)
    for (const chunk of [1, 63, 64, 1000, XOR_WINDOW - 1, XOR_WINDOW + 1, n]) {
      const x = pnetXsalsa20()(NONCE, KEY)
      const parts: Uint8Array[] = []
      for (let i = 0; i < n; i += chunk) parts.push(x.update(p.subarray(i, Math.min(i + chunk, n))))
      x.finalize()
      const got = createHash('sha256').update(Buffer.concat(parts)).digest('hex')
      assert.equal(got, want, `chunks of ${chunk} bytes`)
    }
  })
})
