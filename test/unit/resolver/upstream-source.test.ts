import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { DigestMismatchError, DigestVerifier, type Digest } from '../../../src/oci/digest.js'
import { MAX_MANIFEST_BYTES, OCI_MANIFEST } from '../../../src/oci/media-types.js'
import { OciError } from '../../../src/oci/errors.js'
import type { Stats } from '../../../src/metrics/stats.js'
import { UpstreamUnavailableError } from '../../../src/upstream/errors.js'
import type { UpstreamResponse } from '../../../src/upstream/registry-upstream.js'
import { GrowingFile } from '../../../src/resolver/growing-file.js'
import type { DownloadKind, SourceAnswer } from '../../../src/resolver/download-sink.js'
import { MAX_UPSTREAM_RESUMES, UpstreamSource, rangeAnswer } from '../../../src/resolver/upstream-source.js'
import { FakeRegistryUpstream, pseudoRandom, type FakeRegistryUpstreamInit } from '../fakes/registry-upstream.js'
import { openTestStore, type TestStore } from '../fakes/store.js'
import { recordingLog, type LogLine } from '../fakes/recording-log.js'
import { newStats, until } from './setup.js'

const REPO = 'library/app'
const SIZE = 200_000

/** An UpstreamSource on the fake upstream, with the file it fills and what it told the download. */
interface Rig {
  source: UpstreamSource
  file: GrowingFile
  /** Every `sourced` call, in order. */
  answers: SourceAnswer[]
  /** Every `setMediaType` call, in order. */
  mediaTypes: Array<string | undefined>
  /** Every announce to the swarm. */
  announced: Array<{ key: string, now: boolean | undefined }>
  lines: LogLine[]
}

/** A reader's bytes and how it ended. */
async function readAll (stream: Readable): Promise<{ body: Buffer, error: Error | undefined }> {
  const chunks: Buffer[] = []
  try {
    for await (const c of stream) chunks.push(c as Buffer)
    return { body: Buffer.concat(chunks), error: undefined }
  } catch (err) {
    return { body: Buffer.concat(chunks), error: err as Error }
  }
}

describe('UpstreamSource: one GET into the growing file, resumed with a Range when it drops', () => {
  let t: TestStore
  let up: FakeRegistryUpstream
  let stats: Stats
  let files: GrowingFile[]
  const signal = new AbortController().signal
  /** Peers the swarm deny-listed. */
  let denied: Set<string>

  beforeEach(async () => {
    t = await openTestStore({ policy: { maxSize: 64 * 1024 * 1024 } })
    stats = newStats()
    files = []
    denied = new Set()
    up = new FakeRegistryUpstream()
  })

  afterEach(async () => {
    for (const f of files) {
      await f.abort().catch(() => {})
      f.close()
    }
    await up.close()
    await t.dispose()
  })

  /** A blob the upstream has, and its path there. */
  function upstreamBlob (init: FakeRegistryUpstreamInit = {}, size = SIZE): { body: Buffer, digest: Digest, path: string } {
    void up.close()
    up = new FakeRegistryUpstream(init)
    const body = pseudoRandom(size, `upstream-${size}`)
    const digest = up.addBlob(REPO, body)
    return { body, digest, path: `/v2/${REPO}/blobs/${digest}` }
  }

  /** The source of `digest`, its file made (as BlobDownload.run does first). */
  async function rig (digest: Digest, kind: DownloadKind = 'blob'): Promise<Rig> {
    const { log, lines } = recordingLog('info')
    const answers: SourceAnswer[] = []
    const mediaTypes: Array<string | undefined> = []
    const announced: Array<{ key: string, now: boolean | undefined }> = []
    // The file's pass-through asks the source for the rest, as BlobDownload wires it.
    let source: UpstreamSource | undefined
    const file = new GrowingFile({
      digest,
      store: t.store,
      stats,
      log,
      hashPieces: false,
      rest: (from, verifier, s) => (source as UpstreamSource).rest(from, verifier, s)
    })
    files.push(file)
    source = new UpstreamSource({
      client: up,
      repo: REPO,
      digest,
      kind,
      stats,
      log,
      swarm: {
        announce: (key, opts) => {
          announced.push({ key, now: opts?.now })
        },
        isDenied: peer => denied.has(peer)
      },
      sink: {
        file,
        sourced: answer => {
          answers.push(answer)
          file.size = answer.size
        },
        setMediaType: mediaType => {
          mediaTypes.push(mediaType)
        }
      }
    })
    await file.restart()
    return { source, file, answers, mediaTypes, announced, lines }
  }

  it('one GET: the file fills, verifies and completes; the swarm is told once the first bytes are in', async () => {
    const { body, digest, path } = upstreamBlob()
    const r = await rig(digest)
    const reader = readAll(r.file.reader(0, undefined))
    await r.source.fetch({ signal })
    assert.equal(r.file.verified, true)
    assert.equal(r.file.written, SIZE)
    assert.ok((await reader).body.equals(body))
    assert.deepEqual(r.answers, [{ size: SIZE, cache: 'MISS', origin: up.name, mediaType: undefined }])
    assert.deepEqual(r.announced, [{ key: digest, now: true }])
    assert.equal(up.count('GET', path), 1)
    assert.equal(up.requests[0]?.headers.range, undefined)
    assert.equal(stats.snapshot().bytes_from_upstream, SIZE)
  })

  it('the upstream drops mid-blob: the rest is asked for with a Range from the byte the file has; readers see one whole transfer', async () => {
    const { body, digest, path } = upstreamBlob()
    up.fault(path, { kind: 'drop', afterBytes: 50_000 })
    const r = await rig(digest)
    const epoch = r.file.epoch
    const reader = readAll(r.file.reader(0, undefined))
    await r.source.fetch({ signal })
    const got = await reader
    assert.equal(got.error, undefined)
    assert.ok(got.body.equals(body))
    assert.deepEqual(up.requests.map(q => q.headers.range), [undefined, 'bytes=50000-'])
    assert.equal(up.bytesSent, SIZE, 'no byte fetched twice')
    assert.equal(r.file.epoch, epoch, 'the same copy')
    assert.deepEqual(r.answers.map(a => a.size), [SIZE, SIZE], 'the resumed answer states the whole size (Content-Range)')
    assert.ok(r.lines.some(l => l.msg === 'upstream dropped mid-blob; resuming with a Range' && l.at === 50_000))
    assert.equal(up.count('GET', path), 2)
  })

  it(`resumes up to MAX_UPSTREAM_RESUMES (${MAX_UPSTREAM_RESUMES}) times, each after progress`, async () => {
    const { body, digest } = upstreamBlob()
    up.fault(`/v2/${REPO}/blobs/${digest}`, { kind: 'drop', afterBytes: 10_000, times: MAX_UPSTREAM_RESUMES })
    const r = await rig(digest)
    await r.source.fetch({ signal })
    assert.deepEqual(up.requests.map(q => q.headers.range), [
      undefined,
      ...Array.from({ length: MAX_UPSTREAM_RESUMES }, (_, i) => `bytes=${(i + 1) * 10_000}-`)
    ])
    assert.equal(r.file.verified, true)
    assert.ok((await r.file.readWritten()).equals(body))
  })

  it('gives up after MAX_UPSTREAM_RESUMES: the next drop is the error', async () => {
    const { digest } = upstreamBlob()
    up.fault(`/v2/${REPO}/blobs/${digest}`, { kind: 'drop', afterBytes: 10_000, times: MAX_UPSTREAM_RESUMES + 1 })
    const r = await rig(digest)
    const reader = readAll(r.file.reader(0, undefined))
    await assert.rejects(r.source.fetch({ signal }), /other side closed/)
    assert.equal(up.requests.length, MAX_UPSTREAM_RESUMES + 1)
    assert.equal(r.file.written, 10_000 * (MAX_UPSTREAM_RESUMES + 1))
    assert.equal(r.file.verified, false)
    // What BlobDownload does with the error: the reader is cut short of the blob.
    r.file.fail(new Error('gave up'))
    r.file.wake()
    const got = await reader
    assert.equal(got.error?.message, 'gave up')
    assert.ok(got.body.byteLength < SIZE)
  })

  it('a resume that brings no byte is not resumed again', async () => {
    const { digest, path } = upstreamBlob()
    up.fault(path, { kind: 'drop', afterBytes: 50_000 })
    up.fault(path, { kind: 'drop', afterBytes: 0 })
    const r = await rig(digest)
    await assert.rejects(r.source.fetch({ signal }), /other side closed/)
    assert.deepEqual(up.requests.map(q => q.headers.range), [undefined, 'bytes=50000-'])
  })

  it('an upstream that answers the Range with the whole blob (200): the file starts over from it, and a reader that had bytes is cut', async () => {
    const { body, digest, path } = upstreamBlob({ ranges: false })
    up.fault(path, { kind: 'drop', afterBytes: 50_000 })
    let answer!: () => void
    up.fault(path, {
      kind: 'delay',
      ms: new Promise<void>(resolve => {
        answer = resolve
      })
    })
    const r = await rig(digest)
    const epoch = r.file.epoch
    let had = 0
    const stream = r.file.reader(0, undefined)
    stream.on('data', (c: Buffer) => {
      had += c.byteLength
    })
    const reader = new Promise<Error | undefined>(resolve => {
      stream.on('end', () => {
        resolve(undefined)
      })
      stream.on('error', resolve)
    })
    const fetching = r.source.fetch({ signal })
    await until(() => had > 0 && up.requests.length === 2, 'the reader to have bytes and the resume to be asked')
    answer()
    await fetching
    assert.deepEqual(up.requests.map(q => q.headers.range), [undefined, 'bytes=50000-'])
    assert.notEqual(r.file.epoch, epoch, 'a new copy')
    assert.equal(r.file.verified, true)
    assert.ok((await r.file.readWritten()).equals(body))
    assert.equal(up.bytesSent, 50_000 + SIZE, 'the first 50 000 bytes came twice')
    assert.equal(r.answers.length, 2)
    // The cut names a peer although the upstream ignored the Range: the same words for every restart.
    assert.match((await reader)?.message ?? '', /did not verify.*retry the request/)
    assert.ok((await readAll(r.file.reader(0, undefined))).body.equals(body), 'a new reader has the whole blob')
  })

  it('bytes resumed from peers that do not verify: the whole blob is fetched again, once, and nobody is blamed', async () => {
    const { body, digest, path } = upstreamBlob()
    const r = await rig(digest)
    await r.file.append([Buffer.alloc(50_000, 7)], true)
    r.file.contributors.add('peer-a')
    await r.source.fetch({ signal })
    assert.deepEqual(up.requests.map(q => q.headers.range), ['bytes=50000-', undefined])
    assert.equal(r.file.verified, true)
    assert.equal(r.file.peerBytes, 0)
    assert.ok((await r.file.readWritten()).equals(body))
    const warn = r.lines.find(l => l.msg === 'bytes resumed from peers did not verify; fetching the whole blob from the upstream')
    assert.deepEqual(warn?.peers, ['peer-a'])
    assert.equal(up.count('GET', path), 2)
  })

  it('bytes a deny-listed peer sent or vouched for are not resumed after: the whole blob is fetched, and the file starts over before a client reads on', async () => {
    const { body, digest, path } = upstreamBlob()
    const r = await rig(digest)
    await r.file.append([Buffer.alloc(50_000, 7)], true)
    r.file.contributors.add('liar')
    denied.add('liar')
    const epoch = r.file.epoch
    await r.source.fetch({ signal })
    assert.deepEqual(up.requests.map(q => q.headers.range), [undefined], 'one GET of the whole blob, no Range')
    assert.notEqual(r.file.epoch, epoch, 'a new copy')
    assert.ok((await r.file.readWritten()).equals(body))
    assert.equal(up.count('GET', path), 1)
  })

  it('when the whole blob fetched again does not verify either, the mismatch is the error', async () => {
    const { digest } = upstreamBlob()
    up.fault(`/v2/${REPO}/blobs/${digest}`, { kind: 'corrupt', times: Infinity })
    const r = await rig(digest)
    await r.file.append([Buffer.alloc(50_000, 7)], true)
    await assert.rejects(r.source.fetch({ signal }), DigestMismatchError)
    assert.deepEqual(up.requests.map(q => q.headers.range), ['bytes=50000-', undefined])
  })

  it('a manifest: fetched whole with its type, and refused above MAX_MANIFEST_BYTES', async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }))
    const digest = up.addManifest(REPO, manifest, OCI_MANIFEST)
    const r = await rig(digest, 'manifest')
    await r.file.append([Buffer.from('{"from":"a peer"')], true)
    await r.source.fetch({ signal })
    assert.equal(up.requests[0]?.headers.range, undefined, 'a manifest is never asked for in ranges')
    assert.match(up.requests[0]?.headers.accept ?? '', /application\/vnd\.oci\.image\.manifest\.v1\+json/)
    assert.deepEqual(r.answers, [{ size: manifest.byteLength, cache: 'MISS', origin: up.name, mediaType: OCI_MANIFEST }])
    assert.deepEqual(r.mediaTypes, [], 'a manifest type as stated is kept')
    assert.ok((await r.file.readWritten()).equals(manifest))

    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20)
    const bigDigest = up.addManifest(REPO, big, OCI_MANIFEST)
    const b = await rig(bigDigest, 'manifest')
    const err = await b.source.fetch({ signal }).then(() => undefined, (e: Error) => e)
    assert.ok(err instanceof OciError && err.code === 'MANIFEST_INVALID' && err.status === 502, `got ${String(err)}`)
  })

  describe('rest: the end of the blob past the file, not stored (for readers once the store is full)', () => {
    async function collect (source: UpstreamSource, from: number, verifier: DigestVerifier): Promise<Buffer> {
      const chunks: Buffer[] = []
      for await (const c of source.rest(from, verifier, { signal })) chunks.push(c)
      return Buffer.concat(chunks)
    }

    for (const ranges of [true, false]) {
      it(
        ranges
          ? "a GET with a Range from the byte asked, hashed on from the file's digest state"
          : 'a 200 to the Range: the bytes before the one asked are skipped',
        async () => {
          const { body, digest } = upstreamBlob({ ranges })
          const r = await rig(digest)
          const verifier = new DigestVerifier(digest)
          verifier.update(body.subarray(0, 70_000))
          assert.ok((await collect(r.source, 70_000, verifier)).equals(body.subarray(70_000)))
          assert.equal(up.requests[0]?.headers.range, 'bytes=70000-')
          assert.equal(stats.snapshot().bytes_passed_through, SIZE - 70_000)
          assert.equal(stats.snapshot().bytes_from_upstream, SIZE - 70_000, 'skipped bytes are not counted')
        }
      )
    }

    it('wrong bytes: every chunk is yielded, then the digest mismatch is thrown (the caller holds the last one back)', async () => {
      const { body, digest, path } = upstreamBlob()
      up.fault(path, { kind: 'corrupt' })
      const r = await rig(digest)
      const verifier = new DigestVerifier(digest)
      verifier.update(body.subarray(0, 70_000))
      let got = 0
      await assert.rejects(
        (async () => {
          for await (const c of r.source.rest(70_000, verifier, { signal })) got += c.byteLength
        })(),
        DigestMismatchError
      )
      assert.equal(got, SIZE - 70_000)
      assert.equal(stats.snapshot().bytes_passed_through, 0)
    })
  })

  describe('rangeAnswer: how the upstream answered a GET from a byte', () => {
    const res = (status: number, contentRange?: string): UpstreamResponse => ({
      status,
      headers: { 'content-range': contentRange },
      body: Readable.from([])
    })

    it('206 from that byte: the rest, with the whole size', () => {
      assert.deepEqual(rangeAnswer('up', res(206, 'bytes 100-199/200'), 100), { whole: false, total: 200 })
    })

    it('200: the whole blob again', () => {
      assert.deepEqual(rangeAnswer('up', res(200), 100), { whole: true })
    })

    it('anything else is the upstream failing: a 206 from another byte, without a Content-Range, another 2xx', () => {
      assert.throws(
        () => rangeAnswer('up', res(206, 'bytes 0-199/200'), 100),
        (err: Error) =>
          err instanceof UpstreamUnavailableError &&
          /answered 206 with Content-Range bytes 0-199\/200 to a request from byte 100/.test(err.message)
      )
      assert.throws(() => rangeAnswer('up', res(206), 100), /answered 206 with Content-Range \(none\)/)
      assert.throws(() => rangeAnswer('up', res(204), 100), UpstreamUnavailableError)
    })
  })
})
