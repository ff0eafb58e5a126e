import cliProgress from 'cli-progress'
import { formatBytes } from '../../config/units.js'
import type { CacheStatus } from '../../resolver/source.js'

/** One manifest or blob read through the sidecar. */
export interface FetchedItem {
  image: string
  kind: 'index' | 'manifest' | 'config' | 'layer'
  digest: string
  bytes: number
  cache: CacheStatus | undefined
  /** `X-Cache-Source`: `local`, a peer ID or an upstream name. */
  source: string | undefined
}

/** One image's outcome, for its summary line. */
export interface ImageSummary {
  image: string
  platforms: string[]
  blobs: FetchedItem[]
  ms: number
}

/** Where warm's progress goes: a bar on a terminal, plain lines otherwise. */
export interface WarmReporter {
  /** More bytes are expected (a manifest listed them). */
  expect: (bytes: number) => void
  /** Bytes received, as they arrive. */
  received: (bytes: number) => void
  item: (item: FetchedItem) => void
  imageDone: (summary: ImageSummary) => void
  /** An image failed: the message, then a hint when there is one. */
  imageFailed: (image: string, message: string, hint: string | undefined) => void
  finish: () => void
}

function sourceText (cache: CacheStatus | undefined, source: string | undefined): string {
  if (cache === 'HIT') return 'HIT local'
  if (cache === 'PEER') return `PEER ${source ?? ''}`.trimEnd()
  if (cache === 'MISS') return `MISS upstream ${source ?? ''}`.trimEnd()
  return 'no X-Cache header'
}

export function itemLine (item: FetchedItem): string {
  return `${item.image}  ${item.kind.padEnd(8)} ${item.digest.slice(0, 'sha256:'.length + 12)}  ${formatBytes(item.bytes).padStart(10)}  ${
    sourceText(item.cache, item.source)
  }`
}

/** e.g. `alpine:3.20 (linux/amd64): 3 blobs, 3.4 MiB — 0 local, 1 from peers, 2 from upstream — 1.2 s` */
export function summaryLine (s: ImageSummary): string {
  const count = (c: CacheStatus): number => s.blobs.filter(b => b.cache === c).length
  const bytes = s.blobs.reduce((n, b) => n + b.bytes, 0)
  const platforms = s.platforms.length === 0 ? '' : ` (${s.platforms.join(', ')})`
  return `${s.image}${platforms}: ${s.blobs.length} blob${s.blobs.length === 1 ? '' : 's'}, ${formatBytes(bytes)} — ` +
    `${count('HIT')} local, ${count('PEER')} from peers, ${count('MISS')} from upstream — ${(s.ms / 1000).toFixed(1)} s`
}

function failureText (image: string, message: string, hint: string | undefined): string {
  return `p2p-cache: warm ${image} failed: ${message}\n${hint === undefined ? '' : `  hint: ${hint}\n`}`
}

/** Where the reporters write: the process's stdout and stderr unless a test gives others. */
export interface ReporterStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
}

const PROCESS_STREAMS: ReporterStreams = { stdout: process.stdout, stderr: process.stderr }

/** Without a terminal: one line per manifest and blob, and a summary per image, on stdout. */
export class LineReporter implements WarmReporter {
  constructor (private readonly streams: ReporterStreams = PROCESS_STREAMS) {}
  expect (): void {}
  received (): void {}
  item (item: FetchedItem): void {
    this.streams.stdout.write(`${itemLine(item)}\n`)
  }
  imageDone (s: ImageSummary): void {
    this.streams.stdout.write(`${summaryLine(s)}\n`)
  }
  imageFailed (image: string, message: string, hint: string | undefined): void {
    this.streams.stderr.write(failureText(image, message, hint))
  }
  finish (): void {}
}

/**
 * On a terminal (stderr): one bar of bytes over every image, the summaries above it. Summaries
 * go to stdout; when stdout is the same terminal they are drawn through the bar so they don't
 * tear it.
 */
export class BarReporter implements WarmReporter {
  private readonly multi: cliProgress.MultiBar
  private readonly bar: cliProgress.SingleBar
  private expected = 0
  private done = 0
  private items = 0

  constructor (private readonly streams: ReporterStreams = PROCESS_STREAMS) {
    this.multi = new cliProgress.MultiBar({
      stream: streams.stderr,
      format: 'warming [{bar}] {percentage}% | {done} / {expected} | {items} manifests and blobs',
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      // No terminal modes (hidden cursor, no wrapping) that a Ctrl-C would leave behind: the bar is
      // trimmed to the terminal's width instead.
      hideCursor: false,
      linewrap: true,
      emptyOnZero: true
    })
    this.bar = this.multi.create(0, 0, this.payload())
  }

  private payload (): Record<string, string | number> {
    return { done: formatBytes(this.done), expected: formatBytes(this.expected), items: this.items }
  }

  private print (text: string, toStdout: boolean): void {
    if (toStdout && this.streams.stdout.isTTY !== true) this.streams.stdout.write(text)
    else this.multi.log(text)
  }

  expect (bytes: number): void {
    this.expected += bytes
    this.bar.setTotal(this.expected)
    this.bar.update(this.done, this.payload())
  }

  received (bytes: number): void {
    this.done += bytes
    this.bar.update(this.done, this.payload())
  }

  item (): void {
    this.items++
    this.bar.update(this.done, this.payload())
  }

  imageDone (s: ImageSummary): void {
    this.print(`${summaryLine(s)}\n`, true)
  }
  imageFailed (image: string, message: string, hint: string | undefined): void {
    this.print(failureText(image, message, hint), false)
  }

  finish (): void {
    // A byte count above the manifests' sizes (a descriptor that lied) must not overflow the bar.
    if (this.done > this.expected) this.bar.setTotal(this.done)
    this.bar.update(this.done, this.payload())
    this.multi.update() // flushes log lines queued since the last frame
    this.multi.stop()
  }
}
