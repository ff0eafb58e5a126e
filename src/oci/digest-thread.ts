import { Worker } from 'node:worker_threads'
import { DigestMismatchError, type Digest } from './digest.js'

/**
 * Bytes handed to the hash thread and not hashed yet, over all streams of the process; past
 * this, `update` waits. Bounds the copies in flight, whatever the producers' pace.
 */
const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024

// CommonJS, evaluated: no file to locate next to the compiled or the TypeScript module.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const hashes = new Map()
parentPort.on('message', m => {
  if (m.op === 'update') {
    let h = hashes.get(m.id)
    if (h === undefined) { h = createHash('sha256'); hashes.set(m.id, h) }
    h.update(new Uint8Array(m.buf))
    parentPort.postMessage({ op: 'hashed', id: m.id, bytes: m.buf.byteLength })
  } else if (m.op === 'digest') {
    const h = hashes.get(m.id) ?? createHash('sha256')
    hashes.delete(m.id)
    parentPort.postMessage({ op: 'digest', id: m.id, hex: h.digest('hex') })
  } else if (m.op === 'drop') {
    hashes.delete(m.id)
  }
})
`

type Reply = { op: 'hashed', id: number, bytes: number } | { op: 'digest', id: number, hex: string }

/** The process's one hash thread: sha256 of many streams at once, keyed by id. */
class HashThread {
  private worker: Worker | undefined
  private nextId = 1
  private inFlight = 0
  private roomWaiters: Array<() => void> = []
  private readonly digests = new Map<number, { resolve: (hex: string) => void, reject: (err: Error) => void }>()

  id (): number {
    return this.nextId++
  }

  private thread (): Worker {
    if (this.worker !== undefined) return this.worker
    const worker = new Worker(WORKER_SOURCE, { eval: true })
    // The servers keep the process alive, not an idle hash thread.
    worker.unref()
    worker.on('message', (m: Reply) => {
      if (m.op === 'hashed') {
        this.inFlight -= m.bytes
        this.wake()
      } else {
        this.digests.get(m.id)?.resolve(m.hex)
        this.digests.delete(m.id)
      }
    })
    const fail = (err: Error): void => {
      if (this.worker !== worker) return
      this.worker = undefined
      this.inFlight = 0
      this.wake()
      for (const d of this.digests.values()) d.reject(new Error(`the hash thread stopped: ${err.message}`))
      this.digests.clear()
    }
    worker.on('error', fail)
    worker.on('exit', code => { fail(new Error(`exit code ${code}`)) })
    this.worker = worker
    return worker
  }

  private wake (): void {
    const waiters = this.roomWaiters
    this.roomWaiters = []
    for (const w of waiters) w()
  }

  /** Copies `chunks` (the caller may reuse them at once) and queues them; waits while the thread is far behind. */
  async update (id: number, chunks: Uint8Array[]): Promise<void> {
    let total = 0
    for (const c of chunks) total += c.byteLength
    if (total === 0) return
    while (this.inFlight > 0 && this.inFlight + total > MAX_IN_FLIGHT_BYTES) {
      await new Promise<void>(resolve => this.roomWaiters.push(resolve))
    }
    const buf = new ArrayBuffer(total)
    const view = new Uint8Array(buf)
    let at = 0
    for (const c of chunks) {
      view.set(c, at)
      at += c.byteLength
    }
    this.inFlight += total
    this.thread().postMessage({ op: 'update', id, buf }, [buf])
  }

  async digest (id: number): Promise<string> {
    const worker = this.thread()
    return await new Promise<string>((resolve, reject) => {
      this.digests.set(id, { resolve, reject })
      worker.postMessage({ op: 'digest', id })
    })
  }

  drop (id: number): void {
    this.worker?.postMessage({ op: 'drop', id })
  }
}

const thread = new HashThread()

/**
 * Incremental sha256 verification of a stream computed on the process's hash thread, so the
 * event loop moves bytes (socket, file) while another core hashes them. Each `update` copies
 * its chunks once; in-flight copies are bounded (MAX_IN_FLIGHT_BYTES) by making `update` wait.
 * If the thread dies, `verify` rejects (the download fails and is retried), never passes.
 */
export class ThreadedDigestVerifier {
  private readonly id = thread.id()
  private bytes = 0
  private done = false

  constructor (readonly expected: Digest) {}

  get length (): number {
    return this.bytes
  }

  async update (chunks: Uint8Array[]): Promise<void> {
    for (const c of chunks) this.bytes += c.byteLength
    await thread.update(this.id, chunks)
  }

  /** Resolves when everything passed to `update` hashes to `expected`; else DigestMismatchError. */
  async verify (source: string): Promise<void> {
    this.done = true
    const actual = `sha256:${await thread.digest(this.id)}`
    if (actual !== this.expected) throw new DigestMismatchError(this.expected, actual, source)
  }

  /** Forgets the stream (an aborted write). */
  dispose (): void {
    if (this.done) return
    this.done = true
    thread.drop(this.id)
  }
}
