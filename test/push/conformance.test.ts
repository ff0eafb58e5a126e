/**
 * The push and content-management cases of the OCI distribution-spec conformance suite
 * (github.com/opencontainers/distribution-spec, conformance/02_push_test.go and
 * conformance/04_management_test.go, fixtures from conformance/setup.go, as they stood before the
 * suite's 2025 redesign), run against the sidecar's swarm-local namespace (`/v2/local/...`).
 *
 * The suite is Go (Ginkgo) and needs Go >= 1.24, which this environment does not have, so its
 * cases are rewritten here in TypeScript, in the same order and with the same request sequences.
 * Where the suite is looser or stricter than the spec text (spec.md, "Push", "Content Discovery"
 * and "Content Management"), the spec text is followed, and the comment on the case says so.
 * Bodies are random, so no two runs push the same content.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { startSidecar, type SidecarProcess } from '../fixtures/sidecar-process.js'
import { dumpLogsIfFailed } from '../fixtures/swarm.js'

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip'

/** spec.md "Error Codes": a JSON error body's `code` MUST be one of these. */
const SPEC_ERROR_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS'
])

/** The repository pushed to; the second one receives the mounts (the suite's crossmount namespace). */
const REPO = 'local/conformance/a'
const MOUNT_REPO = 'local/conformance/b'
/** A repository of its own for tags/list, so its exact contents are known. */
const TAGS_REPO = 'local/conformance/tags'

interface Descriptor {
  mediaType: string
  digest: string
  size: number
}
interface TagList {
  name: string
  tags: string[]
}

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`
const descriptor = (mediaType: string, b: Buffer): Descriptor => ({ mediaType, digest: digestOf(b), size: b.byteLength })
/** A digest no test pushes (the suite's dummyDigest). */
const absentDigest = (): string => digestOf(randomBytes(32))

/** An image config like setup.go's: small, and unique per call through a random author. */
function configBlob (architecture = 'amd64'): Buffer {
  return Buffer.from(
    JSON.stringify(
      { architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, author: randomBytes(8).toString('hex') },
      null,
      '\t'
    )
  )
}

/** A small gzip layer (its content is never looked into by a registry). */
function layerBlob (): Buffer {
  return gzipSync(randomBytes(512))
}

/**
 * An image manifest in the suite's shape: tab-indented (not canonical JSON, so "the exact bytes"
 * means something), the config descriptor carrying `data` and a field the spec does not define.
 */
function imageManifest (config: Buffer, layers: Buffer[], opts: { mediaTypeField?: boolean, subject?: Descriptor } = {}): Buffer {
  return Buffer.from(JSON.stringify(
    {
      schemaVersion: 2,
      ...(opts.mediaTypeField === false ? {} : { mediaType: OCI_MANIFEST }),
      config: {
        ...descriptor(OCI_CONFIG, config),
        data: config.toString('base64'),
        newUnspecifiedField: Buffer.from('hello world').toString('base64')
      },
      layers: layers.map(l => descriptor(OCI_LAYER, l)),
      ...(opts.subject !== undefined ? { subject: opts.subject } : {})
    },
    null,
    '\t'
  ))
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Parses a tags/list body, checking its shape ("Listing Tags"). */
async function tagList (res: Response): Promise<TagList> {
  assert.equal(res.status, 200)
  const body: unknown = await res.json()
  assert.ok(
    isRecord(body) && typeof body.name === 'string' && Array.isArray(body.tags) && body.tags.every(t => typeof t === 'string'),
    `a tags/list body: ${JSON.stringify(body)}`
  )
  return { name: body.name as string, tags: body.tags as string[] }
}

describe('OCI distribution-spec conformance: push and content management (local namespace)', function () {
  this.timeout(30_000)
  let sidecar: SidecarProcess

  const at = (path: string): string => new URL(path, sidecar.url).toString()

  /** The Location header, resolved (spec: it MAY be absolute or relative). */
  const location = (res: Response): URL => {
    const value = res.headers.get('location')
    assert.ok(value !== null && value !== '', `a Location header (status ${res.status})`)
    return new URL(value, sidecar.url)
  }

  /** `<location>?digest=<digest>`, keeping whatever query parameters the registry put in the location. */
  const withDigest = (loc: URL, digest: string): URL => {
    const u = new URL(loc)
    u.searchParams.set('digest', digest)
    return u
  }

  /**
   * An error answer: the status, and (spec.md "Error Codes") a JSON body `{errors:[{code,message}]}`
   * whose codes are uppercase identifiers from the spec's table, the first one of `codes`.
   */
  const expectError = async (res: Response, statuses: number | number[], codes: string | string[]): Promise<void> => {
    const allowedStatus = Array.isArray(statuses) ? statuses : [statuses]
    const allowedCodes = Array.isArray(codes) ? codes : [codes]
    const text = await res.text()
    assert.ok(allowedStatus.includes(res.status), `status ${res.status} (expected ${allowedStatus.join(' or ')}): ${text.slice(0, 300)}`)
    assert.match(res.headers.get('content-type') ?? '', /json/, 'the error body is JSON')
    const body: unknown = JSON.parse(text)
    assert.ok(isRecord(body) && Array.isArray(body.errors) && body.errors.length > 0, `{errors: [...]}: ${text.slice(0, 300)}`)
    for (const e of body.errors as unknown[]) {
      assert.ok(isRecord(e) && typeof e.code === 'string', `an error with a code: ${JSON.stringify(e)}`)
      assert.match(e.code as string, /^[A-Z_]+$/)
      assert.ok(SPEC_ERROR_CODES.has(e.code as string), `${String(e.code)} is one of the spec's error codes`)
      assert.ok(e.message === undefined || typeof e.message === 'string', 'message, if present, is a string')
    }
    const first = (body.errors as Array<{ code: string }>)[0]?.code ?? ''
    assert.ok(allowedCodes.includes(first), `error code ${first} (expected ${allowedCodes.join(' or ')})`)
  }

  /** POST …/blobs/uploads/ (Content-Length: 0): 202 and the session's location. */
  const startUpload = async (repo: string): Promise<{ res: Response, loc: URL }> => {
    const res = await fetch(at(`/v2/${repo}/blobs/uploads/`), { method: 'POST', headers: { 'content-length': '0' } })
    assert.equal(res.status, 202, 'POST to the upload endpoint opens a session')
    return { res, loc: location(res) }
  }

  /** POST then PUT ?digest= with the whole blob (the way 04_management_test.go populates). */
  const pushBlob = async (repo: string, blob: Buffer): Promise<string> => {
    const { loc } = await startUpload(repo)
    const put = await fetch(withDigest(loc, digestOf(blob)), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob
    })
    assert.equal(put.status, 201, `PUT of ${digestOf(blob)}: ${await put.clone().text()}`)
    return digestOf(blob)
  }

  const putManifest = async (repo: string, reference: string, body: Buffer, contentType = OCI_MANIFEST): Promise<Response> =>
    await fetch(at(`/v2/${repo}/manifests/${reference}`), { method: 'PUT', headers: { 'content-type': contentType }, body })

  /** A manifest PUT succeeded as "Pushing Manifests" says: 201, a Location, Docker-Content-Digest of the bytes sent. */
  const expectManifestCreated = async (res: Response, body: Buffer): Promise<void> => {
    assert.equal(res.status, 201, await res.clone().text())
    location(res)
    assert.equal(res.headers.get('docker-content-digest'), digestOf(body), 'Docker-Content-Digest is the sha256 of the exact bytes sent')
  }

  const getBlob = async (repo: string, digest: string): Promise<Response> => await fetch(at(`/v2/${repo}/blobs/${digest}`))

  before(async () => {
    sidecar = await startSidecar({ CACHE_REGISTRY_UPSTREAMS: 'docker.io=http://127.0.0.1:1' })
  })

  afterEach(function () {
    dumpLogsIfFailed(this, { sidecar })
  })

  after(async () => {
    await sidecar?.destroy()
  })

  describe('push: blob upload, streamed', () => {
    it('POST, then PATCH with the blob in the body (no Content-Range) answers 202 with a Location and Range', async () => {
      const blob = randomBytes(2048)
      const { loc } = await startUpload(REPO)
      const patch = await fetch(loc, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: blob })
      assert.equal(patch.status, 202)
      const next = location(patch)
      assert.equal(patch.headers.get('range'), `0-${blob.byteLength - 1}`)
      // The session is closed by a PUT ?digest= with no body: 201 and the blob's Location.
      const put = await fetch(withDigest(next, digestOf(blob)), { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } })
      assert.equal(put.status, 201, await put.clone().text())
      const blobUrl = location(put)
      const back = await fetch(blobUrl)
      assert.equal(back.status, 200, 'the Location of a pushed blob is pullable')
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(blob))
    })
  })

  describe('push: blob upload, monolithic', () => {
    it('GET of a blob that does not exist answers 404 BLOB_UNKNOWN', async () => {
      await expectError(await getBlob(REPO, absentDigest()), 404, 'BLOB_UNKNOWN')
      assert.equal((await fetch(at(`/v2/${REPO}/blobs/${absentDigest()}`), { method: 'HEAD' })).status, 404)
    })

    it("a single POST ?digest= with the blob answers 201 with the blob's Location, then GET answers 200 with the bytes", async () => {
      const blob = configBlob()
      const res = await fetch(at(`/v2/${REPO}/blobs/uploads/?digest=${digestOf(blob)}`), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: blob
      })
      // The spec lets a registry without single-POST support answer 202 (an upload session); this
      // one supports it (local-registry.ts startUpload), so 201 is what the spec then requires.
      assert.equal(res.status, 201, await res.clone().text())
      const back = await fetch(location(res))
      assert.equal(back.status, 200)
      assert.equal(back.headers.get('docker-content-digest'), digestOf(blob))
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(blob))
    })

    it('POST for a session, then PUT ?digest= with the whole blob answers 201 with a Location (a config and a layer)', async () => {
      for (const blob of [configBlob(), layerBlob()]) {
        const { loc } = await startUpload(REPO)
        const put = await fetch(withDigest(loc, digestOf(blob)), {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream' },
          body: blob
        })
        assert.equal(put.status, 201, await put.clone().text())
        location(put)
        const back = await getBlob(REPO, digestOf(blob))
        assert.equal(back.status, 200)
        assert.ok(Buffer.from(await back.arrayBuffer()).equals(blob))
      }
    })

    it('HEAD of a pushed blob answers 200 with Content-Length and Docker-Content-Digest, and no body', async () => {
      const blob = layerBlob()
      const digest = await pushBlob(REPO, blob)
      const head = await fetch(at(`/v2/${REPO}/blobs/${digest}`), { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-length'), String(blob.byteLength))
      assert.equal(head.headers.get('docker-content-digest'), digest)
      assert.equal((await head.arrayBuffer()).byteLength, 0)
    })

    it('a digest that does not match the content answers 400 DIGEST_INVALID and stores nothing', async () => {
      const blob = randomBytes(1024)
      const wrong = absentDigest()
      // single POST
      await expectError(
        await fetch(at(`/v2/${REPO}/blobs/uploads/?digest=${wrong}`), { method: 'POST', body: blob }),
        400,
        'DIGEST_INVALID'
      )
      // closing PUT of a session
      const { loc } = await startUpload(REPO)
      await expectError(
        await fetch(withDigest(loc, wrong), { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: blob }),
        400,
        'DIGEST_INVALID'
      )
      // "if the client provided digest is invalid ... the registry SHOULD respond with 400"
      await expectError(
        await fetch(at(`/v2/${REPO}/blobs/uploads/?digest=sha256:not-hex`), { method: 'POST', body: blob }),
        400,
        'DIGEST_INVALID'
      )
      assert.equal((await fetch(at(`/v2/${REPO}/blobs/${wrong}`), { method: 'HEAD' })).status, 404)
      assert.equal((await fetch(at(`/v2/${REPO}/blobs/${digestOf(blob)}`), { method: 'HEAD' })).status, 404)
    })
  })

  describe('push: blob upload, chunked', () => {
    /** Two chunks of a blob; each but the last at least OCI-Chunk-Min-Length when the registry sends one. */
    const chunked = (post: Response): { blob: Buffer, first: Buffer, second: Buffer } => {
      const min = Number(post.headers.get('oci-chunk-min-length') ?? '0') || 0
      const firstLength = Math.max(1500, min)
      const blob = randomBytes(firstLength + 1700)
      return { blob, first: blob.subarray(0, firstLength), second: blob.subarray(firstLength) }
    }
    const patchChunk = async (loc: URL, chunk: Buffer, start: number): Promise<Response> =>
      await fetch(loc, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + chunk.byteLength - 1}` },
        body: chunk
      })

    it('a chunk that does not start where the upload is answers 416', async () => {
      const { res, loc } = await startUpload(REPO)
      const { first, second } = chunked(res)
      const out = await patchChunk(loc, second, first.byteLength)
      assert.equal(out.status, 416, await out.clone().text())
    })

    it('chunks in order: 202 with Range each; a retried chunk 416; GET of the session 204 with Location and Range; PUT ?digest= 201', async () => {
      const { res, loc } = await startUpload(REPO)
      const { blob, first, second } = chunked(res)
      const one = await patchChunk(loc, first, 0)
      assert.equal(one.status, 202, await one.clone().text())
      location(one)
      assert.equal(one.headers.get('range'), `0-${first.byteLength - 1}`, "Range ends where the chunk's Content-Range ends")
      // The same chunk again is out of order now.
      assert.equal((await patchChunk(loc, first, 0)).status, 416, 'a retried chunk')
      const status = await fetch(loc)
      assert.equal(status.status, 204)
      const resume = location(status)
      assert.equal(status.headers.get('range'), `0-${first.byteLength - 1}`)
      const two = await patchChunk(resume, second, first.byteLength)
      assert.equal(two.status, 202, await two.clone().text())
      assert.equal(two.headers.get('range'), `0-${blob.byteLength - 1}`)
      const put = await fetch(withDigest(location(two), digestOf(blob)), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' }
      })
      assert.equal(put.status, 201, await put.clone().text())
      const back = await fetch(location(put))
      assert.equal(back.status, 200)
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(blob))
    })

    it('the final chunk may come in the closing PUT (with its Content-Range): 201', async () => {
      const { res, loc } = await startUpload(REPO)
      const { blob, first, second } = chunked(res)
      const one = await patchChunk(loc, first, 0)
      assert.equal(one.status, 202)
      const put = await fetch(withDigest(location(one), digestOf(blob)), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${first.byteLength}-${blob.byteLength - 1}` },
        body: second
      })
      assert.equal(put.status, 201, await put.clone().text())
      assert.equal((await getBlob(REPO, digestOf(blob))).status, 200)
    })

    it('a final chunk out of order in the closing PUT answers 416, and the session can be resumed', async () => {
      // spec.md "Pushing a blob in chunks": "If the final chunk is uploaded out of order, the
      // registry MUST respond with a 416 Requested Range Not Satisfiable code."
      const { res, loc } = await startUpload(REPO)
      const { blob, first, second } = chunked(res)
      const one = await patchChunk(loc, first, 0)
      assert.equal(one.status, 202)
      const skip = 100
      const put = await fetch(withDigest(location(one), digestOf(blob)), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${first.byteLength + skip}-${blob.byteLength - 1}` },
        body: second.subarray(skip)
      })
      assert.equal(put.status, 416, `status ${put.status}: ${await put.text()}`)
      // "To get the current status after a 416 error, issue a GET request to <blob-push-location>"
      const status = await fetch(loc)
      assert.equal(status.status, 204)
      assert.equal(status.headers.get('range'), `0-${first.byteLength - 1}`)
      const done = await fetch(withDigest(location(status), digestOf(blob)), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${first.byteLength}-${blob.byteLength - 1}` },
        body: second
      })
      assert.equal(done.status, 201)
    })

    it('DELETE of a session cancels it (204); the session is then unknown (404 BLOB_UPLOAD_UNKNOWN)', async () => {
      const { loc } = await startUpload(REPO)
      assert.equal((await patchChunk(loc, randomBytes(100), 0)).status, 202)
      // "Cancel a blob upload": "If successful, the response SHOULD be a 204 No Content".
      const cancel = await fetch(loc, { method: 'DELETE', headers: { 'content-length': '0' } })
      assert.equal(cancel.status, 204)
      await expectError(await fetch(loc), 404, 'BLOB_UPLOAD_UNKNOWN')
      await expectError(await patchChunk(loc, randomBytes(10), 100), 404, 'BLOB_UPLOAD_UNKNOWN')
    })
  })

  describe('push: cross-repository blob mount', () => {
    let mounted: Buffer

    before(async () => {
      mounted = randomBytes(1500)
      await pushBlob(REPO, mounted)
    })

    it('mount of a blob that exists nowhere, without from, answers 202 with an upload session', async () => {
      const res = await fetch(at(`/v2/${MOUNT_REPO}/blobs/uploads/?mount=${absentDigest()}`), { method: 'POST' })
      assert.equal(res.status, 202, await res.clone().text())
      assert.ok(location(res).pathname.startsWith(`/v2/${MOUNT_REPO}/blobs/uploads/`))
    })

    it("mount of another repository's blob answers 201 with the blob's Location in the target repository, which GET serves", async () => {
      const digest = digestOf(mounted)
      const res = await fetch(at(`/v2/${MOUNT_REPO}/blobs/uploads/?mount=${digest}&from=${REPO}`), { method: 'POST' })
      // The spec allows 202 from a registry that cannot mount; this one mounts what it holds (local-registry.ts).
      assert.equal(res.status, 201, await res.clone().text())
      const loc = location(res)
      assert.equal(loc.pathname, `/v2/${MOUNT_REPO}/blobs/${digest}`)
      const back = await fetch(loc)
      assert.equal(back.status, 200)
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(mounted))
    })

    it('mount of a blob that is missing falls back to 202 and an upload session that completes the push', async () => {
      const blob = randomBytes(900)
      const res = await fetch(at(`/v2/${MOUNT_REPO}/blobs/uploads/?mount=${digestOf(blob)}&from=${REPO}`), { method: 'POST' })
      assert.equal(res.status, 202, await res.clone().text())
      const loc = location(res)
      assert.ok(loc.pathname.startsWith(`/v2/${MOUNT_REPO}/blobs/uploads/`))
      const put = await fetch(withDigest(loc, digestOf(blob)), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: blob
      })
      assert.equal(put.status, 201)
      assert.equal((await getBlob(MOUNT_REPO, digestOf(blob))).status, 200)
    })

    it('mount without from: the registry MAY find the blob (201) or open a session (202)', async () => {
      const res = await fetch(at(`/v2/${MOUNT_REPO}/blobs/uploads/?mount=${digestOf(mounted)}`), { method: 'POST' })
      assert.ok(res.status === 201 || res.status === 202, `status ${res.status}`)
      location(res)
    })
  })

  describe('push: manifest upload', () => {
    let config: Buffer
    let layer: Buffer
    let manifest: Buffer

    before(async () => {
      config = configBlob()
      layer = layerBlob()
      await pushBlob(REPO, config)
      await pushBlob(REPO, layer)
      manifest = imageManifest(config, [layer])
    })

    it('GET of a manifest that does not exist answers 404 MANIFEST_UNKNOWN', async () => {
      await expectError(await fetch(at(`/v2/${REPO}/manifests/nonexistent-${randomBytes(4).toString('hex')}`)), 404, 'MANIFEST_UNKNOWN')
      await expectError(await fetch(at(`/v2/${REPO}/manifests/${absentDigest()}`)), 404, 'MANIFEST_UNKNOWN')
    })

    it('PUT by tag (four tags) answers 201 with a Location and Docker-Content-Digest equal to the sha256 of the bytes sent', async () => {
      for (let i = 0; i < 4; i++) await expectManifestCreated(await putManifest(REPO, `test${i}`, manifest), manifest)
    })

    it('PUT of a manifest with no layers, typed by Content-Type alone, answers 201', async () => {
      // "The uploaded manifest MUST reference any blobs that make up the object. However, the list of blobs MAY be empty."
      const empty = imageManifest(config, [], { mediaTypeField: false })
      await expectManifestCreated(await putManifest(REPO, 'emptylayer', empty), empty)
    })

    it('PUT by digest answers 201 with a Location and the same Docker-Content-Digest', async () => {
      const other = imageManifest(config, [layer, layer])
      const res = await putManifest(REPO, digestOf(other), other)
      await expectManifestCreated(res, other)
      assert.equal(location(res).pathname, `/v2/${REPO}/manifests/${digestOf(other)}`)
    })

    it('GET by digest and by tag answer 200 with the exact bytes pushed; HEAD with Content-Length and Docker-Content-Digest', async () => {
      for (const reference of [digestOf(manifest), 'test0', 'test3']) {
        const res = await fetch(at(`/v2/${REPO}/manifests/${reference}`), { headers: { accept: OCI_MANIFEST } })
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-type'), OCI_MANIFEST)
        assert.equal(res.headers.get('docker-content-digest'), digestOf(manifest))
        assert.ok(
          Buffer.from(await res.arrayBuffer()).equals(manifest),
          `${reference}: the registry MUST store the manifest in the exact byte representation provided`
        )
        const head = await fetch(at(`/v2/${REPO}/manifests/${reference}`), { method: 'HEAD', headers: { accept: OCI_MANIFEST } })
        assert.equal(head.status, 200)
        assert.equal(head.headers.get('content-length'), String(manifest.byteLength))
        assert.equal(head.headers.get('docker-content-digest'), digestOf(manifest))
      }
    })

    it('a manifest referencing a blob that is not in the registry answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
      // spec.md "Push": a registry MAY reject such a manifest, and when it does, "it MUST result in
      // one or more MANIFEST_BLOB_UNKNOWN errors". This registry rejects (local-registry.ts
      // putManifest); 400 is the status the spec's error table goes with for a bad request.
      const missingLayer = imageManifest(config, [layer, layerBlob()])
      await expectError(await putManifest(REPO, 'missing-layer', missingLayer), 400, 'MANIFEST_BLOB_UNKNOWN')
      const missingConfig = imageManifest(configBlob(), [layer])
      await expectError(await putManifest(REPO, digestOf(missingConfig), missingConfig), 400, 'MANIFEST_BLOB_UNKNOWN')
      await expectError(await fetch(at(`/v2/${REPO}/manifests/missing-layer`)), 404, 'MANIFEST_UNKNOWN')
    })

    it('a manifest whose subject does not exist (yet) is accepted', async () => {
      // spec.md "Push": "A registry MUST initially accept an otherwise valid manifest with a
      // subject field that references a manifest that does not exist in the repository".
      const subject: Descriptor = { mediaType: OCI_MANIFEST, digest: absentDigest(), size: 321 }
      const referrer = imageManifest(config, [layer], { subject })
      await expectManifestCreated(await putManifest(REPO, digestOf(referrer), referrer), referrer)
    })

    it('an image index pushed after its child manifests answers 201, and GET returns its exact bytes', async () => {
      const children: Array<{ body: Buffer, architecture: string }> = []
      for (const architecture of ['amd64', 'arm64']) {
        const c = configBlob(architecture)
        await pushBlob(REPO, c)
        const body = imageManifest(c, [layer])
        await expectManifestCreated(await putManifest(REPO, digestOf(body), body), body)
        children.push({ body, architecture })
      }
      const index = Buffer.from(JSON.stringify(
        {
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: children.map(c => ({ ...descriptor(OCI_MANIFEST, c.body), platform: { architecture: c.architecture, os: 'linux' } }))
        },
        null,
        '  '
      ))
      await expectManifestCreated(await putManifest(REPO, 'multi', index, OCI_INDEX), index)
      const back = await fetch(at(`/v2/${REPO}/manifests/multi`), { headers: { accept: `${OCI_INDEX}, ${OCI_MANIFEST}` } })
      assert.equal(back.status, 200)
      assert.equal(back.headers.get('content-type'), OCI_INDEX)
      assert.equal(back.headers.get('docker-content-digest'), digestOf(index))
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(index))
      const child = await fetch(at(`/v2/${REPO}/manifests/${digestOf(children[0]?.body ?? Buffer.alloc(0))}`), {
        headers: { accept: OCI_MANIFEST }
      })
      assert.equal(child.status, 200)
    })

    it('an image index naming a manifest that was not pushed answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const orphan = imageManifest(config, [layer, layer, layer])
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, orphan)] }))
      await expectError(await putManifest(REPO, 'orphan-index', index, OCI_INDEX), 400, 'MANIFEST_BLOB_UNKNOWN')
    })
  })

  describe('content discovery: tags/list', () => {
    // Pushed in this (unsorted) order; mixed case, digits and separators.
    const TAGS = ['v2', 'Latest', '1.10', '1.2', '1.0', 'beta', '_private', 'alpha.1', 'alpha-1']
    let order: string[]

    before(async () => {
      const config = configBlob()
      await pushBlob(TAGS_REPO, config)
      const manifest = imageManifest(config, [])
      for (const tag of TAGS) await expectManifestCreated(await putManifest(TAGS_REPO, tag, manifest), manifest)
    })

    it('lists every tag, in lexical or ASCIIbetical order', async () => {
      const list = await tagList(await fetch(at(`/v2/${TAGS_REPO}/tags/list`)))
      assert.equal(list.name, TAGS_REPO)
      // "the tags MUST be in lexical (i.e. case-insensitive alphanumeric order) or "ASCIIbetical" (Go's sort.Strings) order"
      const ascii = [...TAGS].sort()
      const lexical = [...TAGS].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0)
      assert.ok(
        JSON.stringify(list.tags) === JSON.stringify(ascii) || JSON.stringify(list.tags) === JSON.stringify(lexical),
        `tags in order: ${JSON.stringify(list.tags)}`
      )
      order = list.tags
    })

    it('n gives exactly n tags while more remain, and the Link rel="next" pages walk the whole list', async () => {
      const seen: string[] = []
      let next: string | undefined = at(`/v2/${TAGS_REPO}/tags/list?n=4`)
      for (let page = 0; next !== undefined; page++) {
        assert.ok(page < 10, 'pagination ends')
        const res: Response = await fetch(next)
        const link = res.headers.get('link')
        const list = await tagList(res)
        const remaining = order.length - seen.length
        assert.equal(list.tags.length, Math.min(4, remaining), `page ${page}: n tags, fewer only at the end`)
        seen.push(...list.tags)
        if (seen.length < order.length) {
          // Link is a MAY in the spec; this registry sends it (local-registry.ts listTags), so
          // its absence while tags remain is a regression. When present it MUST be RFC 5988 rel="next".
          assert.ok(link !== null, `page ${page}: a Link header while tags remain`)
        }
        if (link === null) {
          next = undefined
          continue
        }
        const m = /^<([^>]+)>;\s*rel="next"$/.exec(link)
        assert.ok(m !== null, `Link ${link} is <url>; rel="next"`)
        next = at(m[1] as string)
      }
      assert.deepEqual(seen, order)
    })

    it('last gives the tags after it (not including it), with or without n', async () => {
      const after = order[2] as string
      assert.deepEqual(
        (await tagList(await fetch(at(`/v2/${TAGS_REPO}/tags/list?last=${encodeURIComponent(after)}`)))).tags,
        order.slice(3)
      )
      const from = order[4] as string
      assert.deepEqual(
        (await tagList(await fetch(at(`/v2/${TAGS_REPO}/tags/list?n=2&last=${encodeURIComponent(from)}`)))).tags,
        order.slice(5, 7)
      )
    })

    it('n=0 gives an empty list and no Link header', async () => {
      const res = await fetch(at(`/v2/${TAGS_REPO}/tags/list?n=0`))
      assert.equal(res.headers.get('link'), null)
      assert.deepEqual(await tagList(res), { name: TAGS_REPO, tags: [] })
    })
  })

  describe('content management', () => {
    const tagToDelete = 'tagtest0'
    let config: Buffer
    let layer: Buffer
    let manifest: Buffer
    let numTags: number

    before(async () => {
      // 04_management_test.go "Setup": a config, a layer, a tagged manifest; the tags counted.
      config = configBlob()
      layer = layerBlob()
      await pushBlob(REPO, config)
      await pushBlob(REPO, layer)
      manifest = imageManifest(config, [layer])
      await expectManifestCreated(await putManifest(REPO, tagToDelete, manifest), manifest)
      numTags = (await tagList(await fetch(at(`/v2/${REPO}/tags/list`)))).tags.length
    })

    it('DELETE of a tag answers 202; then GET and HEAD of the tag answer 404', async () => {
      // "Deleting tags": 202 on success (400 or 405 only where tag deletion is disabled, which it is not here).
      const res = await fetch(at(`/v2/${REPO}/manifests/${tagToDelete}`), { method: 'DELETE' })
      assert.equal(res.status, 202, await res.clone().text())
      await expectError(await fetch(at(`/v2/${REPO}/manifests/${tagToDelete}`)), 404, 'MANIFEST_UNKNOWN')
      assert.equal((await fetch(at(`/v2/${REPO}/manifests/${tagToDelete}`), { method: 'HEAD' })).status, 404)
    })

    it('DELETE of a manifest by digest answers 202, or 405 UNSUPPORTED where manifest deletion is disabled; GET follows', async () => {
      // "Deleting Manifests": "If manifest deletion is disabled, the registry MUST respond with
      // either a 400 Bad Request or a 405 Method Not Allowed." This registry disables it by design
      // (local-registry.ts deleteManifest), so 405 with the spec's UNSUPPORTED code is conformant.
      // (The Go suite allowed 202 or 404 here; the spec text is followed instead.)
      const res = await fetch(at(`/v2/${REPO}/manifests/${digestOf(manifest)}`), { method: 'DELETE' })
      if (res.status === 202) {
        assert.equal((await fetch(at(`/v2/${REPO}/manifests/${digestOf(manifest)}`))).status, 404, 'a deleted manifest is gone')
      } else {
        await expectError(res, 405, 'UNSUPPORTED')
        assert.equal((await fetch(at(`/v2/${REPO}/manifests/${digestOf(manifest)}`))).status, 200, 'not deleted, still served')
      }
    })

    it('tags/list reflects the deletion', async () => {
      const list = await tagList(await fetch(at(`/v2/${REPO}/tags/list`)))
      assert.equal(list.tags.length, numTags - 1)
      assert.ok(!list.tags.includes(tagToDelete))
    })

    it('DELETE of a blob answers 202, or 405 UNSUPPORTED where blob deletion is disabled; GET follows', async () => {
      // "Deleting Blobs": 202 on success, 404 if the blob is not found (it is here), and "if blob
      // deletion is disabled, the registry MUST respond with either a 400 Bad Request or a 405
      // Method Not Allowed". This registry disables it (blobs expire with CACHE_LOCAL_TTL).
      for (const blob of [config, layer]) {
        const res = await fetch(at(`/v2/${REPO}/blobs/${digestOf(blob)}`), { method: 'DELETE' })
        if (res.status === 202) {
          await expectError(await getBlob(REPO, digestOf(blob)), 404, 'BLOB_UNKNOWN')
        } else {
          await expectError(res, 405, 'UNSUPPORTED')
          assert.equal((await getBlob(REPO, digestOf(blob))).status, 200, 'not deleted, still served')
        }
      }
    })
  })

  describe('error bodies', () => {
    it("are JSON {errors:[{code,message}]} with the spec's codes", async () => {
      // Each call checks status, JSON shape and code (see expectError).
      await expectError(
        await fetch(at(`/v2/${REPO}/blobs/uploads/${randomBytes(8).toString('hex')}`), { method: 'PATCH', body: randomBytes(10) }),
        404,
        'BLOB_UPLOAD_UNKNOWN'
      )
      await expectError(await fetch(at(`/v2/${REPO}/blobs/uploads/${randomBytes(8).toString('hex')}`)), 404, 'BLOB_UPLOAD_UNKNOWN')
      await expectError(await putManifest(REPO, 'not-json', Buffer.from('{ this is not json')), 400, 'MANIFEST_INVALID')
      await expectError(
        await fetch(at('/v2/local/Conformance/blobs/uploads/'), { method: 'POST' }),
        [400, 404],
        ['NAME_INVALID', 'NAME_UNKNOWN']
      )
      await expectError(await getBlob(REPO, absentDigest()), 404, 'BLOB_UNKNOWN')
      await expectError(await fetch(at(`/v2/${REPO}/manifests/${absentDigest()}`)), 404, 'MANIFEST_UNKNOWN')
    })
  })
})
