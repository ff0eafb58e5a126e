import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import {
  BarReporter,
  itemLine,
  LineReporter,
  summaryLine,
  type FetchedItem,
  type ReporterStreams,
  type WarmReporter
} from '../../../../src/cli/warm/progress.js'

/** A stream that keeps what is written; `tty` makes it look like a terminal of `columns` columns. */
class Capture extends Writable {
  text = ''
  readonly isTTY: boolean
  readonly columns = 120
  constructor (tty: boolean) {
    super()
    this.isTTY = tty
  }

  override _write (chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString()
    done()
  }
}

/** The text without terminal escape sequences. */
// oxlint-disable-next-line no-control-regex -- terminal escape sequences are what is stripped
const plain = (text: string): string => text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')

function streams (stdoutTty: boolean, stderrTty: boolean): ReporterStreams & { stdout: Capture, stderr: Capture } {
  return { stdout: new Capture(stdoutTty), stderr: new Capture(stderrTty) }
}

const DIGEST = `sha256:${'0123456789ab'.repeat(5)}0123`

function item (over: Partial<FetchedItem> = {}): FetchedItem {
  return { image: 'alpine:3.20', kind: 'layer', digest: DIGEST, bytes: 3.4 * 1024 ** 2, cache: 'MISS', source: 'docker.io', ...over }
}

describe('warm progress: what a person sees while images are warmed', () => {
  it('one line per item: image, kind, short digest, size and where it came from', () => {
    assert.equal(itemLine(item()), `alpine:3.20  layer    sha256:0123456789ab     3.4 MiB  MISS upstream docker.io`)
    assert.match(itemLine(item({ kind: 'manifest', cache: 'HIT', source: 'local' })), /manifest sha256:0123456789ab .* HIT local$/)
    assert.match(itemLine(item({ cache: 'PEER', source: '12D3KooWpeer' })), /PEER 12D3KooWpeer$/)
    assert.match(itemLine(item({ cache: 'PEER', source: undefined })), /PEER$/)
    assert.match(
      itemLine(item({ cache: undefined, source: undefined })),
      /no X-Cache header$/,
      'a proxy in between that drops the header is visible'
    )
  })

  it('a summary per image counts blobs by where they came from, with total size and time', () => {
    const line = summaryLine({
      image: 'alpine:3.20',
      platforms: ['linux/amd64'],
      blobs: [item({ cache: 'HIT', bytes: 1024 }), item({ cache: 'PEER', bytes: 1024 }), item({ cache: 'MISS', bytes: 2048 })],
      ms: 1234
    })
    assert.equal(line, 'alpine:3.20 (linux/amd64): 3 blobs, 4.0 KiB — 1 local, 1 from peers, 1 from upstream — 1.2 s')
    assert.equal(
      summaryLine({ image: 'x', platforms: [], blobs: [item({ bytes: 0 })], ms: 50 }),
      'x: 1 blob, 0 B — 0 local, 0 from peers, 1 from upstream — 0.1 s'
    )
    assert.match(
      summaryLine({ image: 'x', platforms: ['linux/amd64', 'linux/arm64/v8'], blobs: [], ms: 0 }),
      /^x \(linux\/amd64, linux\/arm64\/v8\): 0 blobs, 0 B/
    )
  })

  it('without a terminal: items and summaries on stdout, a failure and its hint on stderr', () => {
    const s = streams(false, false)
    const reporter: WarmReporter = new LineReporter(s)
    reporter.expect(100)
    reporter.received(100)
    reporter.item(item())
    reporter.imageDone({ image: 'alpine:3.20', platforms: [], blobs: [item()], ms: 1000 })
    reporter.imageFailed('node:20', 'the sidecar answered 404 MANIFEST_UNKNOWN: no such tag', 'check the tag')
    reporter.imageFailed('x:1', 'boom', undefined)
    reporter.finish()
    assert.deepEqual(s.stdout.text.split('\n'), [
      itemLine(item()),
      'alpine:3.20: 1 blob, 3.4 MiB — 0 local, 0 from peers, 1 from upstream — 1.0 s',
      ''
    ])
    assert.equal(
      s.stderr.text,
      'p2p-cache: warm node:20 failed: the sidecar answered 404 MANIFEST_UNKNOWN: no such tag\n  hint: check the tag\n' +
        'p2p-cache: warm x:1 failed: boom\n'
    )
  })

  it('on a terminal: a bar of bytes on stderr, summaries on stdout when stdout is not that terminal', () => {
    const s = streams(false, true)
    const reporter = new BarReporter(s)
    reporter.expect(2048)
    reporter.received(1024)
    reporter.item()
    reporter.imageDone({ image: 'alpine:3.20', platforms: [], blobs: [], ms: 0 })
    reporter.imageFailed('node:20', 'boom', 'try again')
    reporter.received(1024)
    reporter.finish()
    assert.equal(s.stdout.text, 'alpine:3.20: 0 blobs, 0 B — 0 local, 0 from peers, 0 from upstream — 0.0 s\n')
    const screen = plain(s.stderr.text)
    assert.match(screen, /p2p-cache: warm node:20 failed: boom\n {2}hint: try again\n/, 'a failure is drawn above the bar')
    assert.match(screen, /warming \[[\u2588\u2591]+\] 100% \| 2\.0 KiB \/ 2\.0 KiB \| 1 manifests and blobs/)
  })

  it('on a terminal shared by stdout and stderr, summaries are drawn through the bar so they do not tear it', () => {
    const s = streams(true, true)
    const reporter = new BarReporter(s)
    reporter.imageDone({ image: 'alpine:3.20', platforms: [], blobs: [], ms: 0 })
    reporter.finish()
    assert.equal(s.stdout.text, '')
    assert.match(plain(s.stderr.text), /alpine:3\.20: 0 blobs/)
  })

  it('more bytes than the manifests listed (a descriptor that lied) end the bar at 100%, not past it', () => {
    const s = streams(false, true)
    const reporter = new BarReporter(s)
    reporter.expect(1000)
    reporter.received(5000)
    reporter.finish()
    const frames = plain(s.stderr.text).match(/\d+% \| [^|]+\|/g) ?? []
    assert.match(frames.at(-1) ?? '', /^100% \| 4\.9 KiB \/ 1000 B \|/)
  })
})
