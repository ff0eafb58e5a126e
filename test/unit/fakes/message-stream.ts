import type { Logger } from '@libp2p/interface'
import { AbstractStream, type SendResult } from '@libp2p/utils'

type Outgoing = Parameters<AbstractStream['sendData']>[0]

/** A libp2p logger that writes nothing. */
function quietLog (): Logger {
  const log = Object.assign((): void => {}, {
    error: (): void => {},
    trace: (): void => {},
    enabled: false,
    newScope: (): Logger => log
  })
  return log
}

/**
 * One end of a libp2p stream whose other end (the peer, and the muxer's window between them) the
 * test plays. Everything on this side is libp2p's own code (@libp2p/utils AbstractStream: read
 * buffer, pause/resume, drain, close and reset events, the stale `onDrain()` promise); only the
 * wire is fake:
 *  - the peer: `peerSends(bytes)`, `peerEnds()` (closes its write side), `peerResets()`,
 *    `transportFails(err)`, `peerReads()` (takes everything sent so far, freeing the window);
 *  - the window: `window` bytes may be in flight before `send` returns false and the stream needs
 *    a drain (which `peerReads()` gives);
 *  - what this side did: `sentBytes()`, `pausedByReader` (this side asked the peer to stop
 *    sending), `pauses`/`resumes`, `resetSent`, `writeClosed`.
 */
export class FakeMessageStream extends AbstractStream {
  /** Bytes this side sent, in order (what the peer received or will). */
  readonly sent: Uint8Array[] = []
  /** Bytes sent that the peer has not read yet. */
  inFlight = 0
  pausedByReader = false
  pauses = 0
  resumes = 0
  resetSent: Error | undefined
  writeClosed = false

  constructor (private readonly window = Number.POSITIVE_INFINITY) {
    super({ id: 'fake', log: quietLog(), direction: 'outbound', protocol: '/fake/1.0.0' })
  }

  sendData (data: Outgoing): SendResult {
    const bytes = data.subarray()
    this.sent.push(bytes)
    this.inFlight += bytes.byteLength
    return { sentBytes: bytes.byteLength, canSendMore: this.inFlight < this.window }
  }

  sendReset (err: Error): void {
    this.resetSent = err
  }

  sendPause (): void {
    this.pausedByReader = true
    this.pauses++
  }

  sendResume (): void {
    this.pausedByReader = false
    this.resumes++
  }

  async sendCloseWrite (): Promise<void> {
    this.writeClosed = true
  }

  async sendCloseRead (): Promise<void> {}

  /** All bytes sent so far, joined. */
  sentBytes (): Buffer {
    return Buffer.concat(this.sent)
  }

  /** The peer sends `bytes` (delivered to 'message' listeners at once, or buffered while paused). */
  peerSends (bytes: Uint8Array): void {
    this.onData(bytes)
  }

  /** The peer closes its write side: no more bytes will come. */
  peerEnds (): void {
    this.onRemoteCloseWrite()
  }

  /** The peer resets the stream. */
  peerResets (): void {
    this.onRemoteReset()
  }

  /** The connection under the stream fails. */
  transportFails (err: Error): void {
    this.onTransportClosed(err)
  }

  /** The peer reads everything in flight: the window opens and, if it was full, the stream drains. */
  peerReads (): void {
    const wasFull = this.inFlight >= this.window
    this.inFlight = 0
    if (wasFull) this.onMuxerDrain()
  }
}
