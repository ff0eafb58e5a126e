import assert from 'node:assert/strict'
import { parseRegistryPath } from '../../../src/registry/path.js'
import { OciError } from '../../../src/oci/errors.js'

const DIGEST = `sha256:${'a'.repeat(64)}`

/** The OciError `fn` throws, for its status, code and message. */
function ociError (fn: () => unknown): OciError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof OciError, `expected an OciError, got ${String(err)}`)
    return err
  }
  assert.fail('expected an OciError')
}

describe('parseRegistryPath: the OCI distribution pull-API paths', () => {
  it('/v2/ and /v2 are the base endpoint', () => {
    assert.deepEqual(parseRegistryPath('/v2/'), { kind: 'base' })
    assert.deepEqual(parseRegistryPath('/v2'), { kind: 'base' })
  })

  it('manifests by tag and by digest, with multi-component names', () => {
    assert.deepEqual(parseRegistryPath('/v2/library/alpine/manifests/3.20'), {
      kind: 'manifest',
      name: 'library/alpine',
      reference: '3.20'
    })
    assert.deepEqual(parseRegistryPath('/v2/a/b/c-d/manifests/latest'), { kind: 'manifest', name: 'a/b/c-d', reference: 'latest' })
    assert.deepEqual(parseRegistryPath(`/v2/alpine/manifests/${DIGEST}`), {
      kind: 'manifest',
      name: 'alpine',
      reference: DIGEST,
      digest: DIGEST
    })
  })

  it('blobs, tags/list and referrers', () => {
    assert.deepEqual(parseRegistryPath(`/v2/org/app/blobs/${DIGEST}`), { kind: 'blob', name: 'org/app', digest: DIGEST })
    assert.deepEqual(parseRegistryPath('/v2/org/app/tags/list'), { kind: 'tags', name: 'org/app' })
    assert.deepEqual(parseRegistryPath(`/v2/org/app/referrers/${DIGEST}`), { kind: 'referrers', name: 'org/app', digest: DIGEST })
  })

  it('a repository literally named like an endpoint keeps its full name', () => {
    assert.deepEqual(parseRegistryPath('/v2/team/manifests/manifests/v1'), { kind: 'manifest', name: 'team/manifests', reference: 'v1' })
  })

  it('paths that are not pull endpoints are not ours (undefined)', () => {
    assert.equal(parseRegistryPath('/v2/alpine/blobs/uploads/'), undefined)
    assert.equal(parseRegistryPath('/v2/_catalog'), undefined)
    assert.equal(parseRegistryPath('/v2/alpine'), undefined)
  })

  it('names that could leave the data directory are refused with NAME_INVALID', () => {
    for (const bad of [
      '/v2/../etc/manifests/latest',
      '/v2/a/%2e%2e/manifests/latest',
      '/v2/a%2fb/manifests/latest',
      '/v2/Alpine/manifests/latest',
      '/v2//alpine/manifests/latest'
    ]) {
      const err = ociError(() => parseRegistryPath(bad))
      assert.equal(err.status, 400, bad)
      assert.equal(err.code, 'NAME_INVALID', bad)
      assert.match(err.message, /expected lowercase path components like library\/alpine/)
    }
  })

  it('an over-long repository name is refused, and the message quotes at most 200 characters of it', () => {
    const name = Array.from({ length: 30 }, () => 'abcdefghij').join('/')
    const err = ociError(() => parseRegistryPath(`/v2/${name}/manifests/latest`))
    assert.equal(err.code, 'NAME_INVALID')
    assert.ok(err.message.length < 300)
  })

  it('a malformed sha256 digest is DIGEST_INVALID, saying the expected form', () => {
    for (const path of [
      `/v2/a/blobs/sha256:${'A'.repeat(64)}`,
      '/v2/a/blobs/sha256:abc',
      '/v2/a/blobs/latest',
      `/v2/a/manifests/sha256:${'g'.repeat(64)}`,
      '/v2/a/referrers/nope'
    ]) {
      const err = ociError(() => parseRegistryPath(path))
      assert.equal(err.status, 400, path)
      assert.equal(err.code, 'DIGEST_INVALID', path)
      assert.match(err.message, /expected sha256: and 64 lowercase hex characters/, path)
    }
  })

  it('another digest algorithm is refused as unsupported, naming it', () => {
    const err = ociError(() => parseRegistryPath(`/v2/a/blobs/sha512:${'a'.repeat(128)}`))
    assert.equal(err.code, 'DIGEST_INVALID')
    assert.match(err.message, /unsupported digest algorithm "sha512".*only sha256 is supported/)
    const manifest = ociError(() => parseRegistryPath(`/v2/a/manifests/md5:${'a'.repeat(32)}`))
    assert.match(manifest.message, /unsupported digest algorithm "md5"/)
  })

  it('an invalid tag is TAG_INVALID with the tag grammar', () => {
    for (const tag of ['-leading-dash', '.dot', 'x'.repeat(129)]) {
      const err = ociError(() => parseRegistryPath(`/v2/alpine/manifests/${tag}`))
      assert.equal(err.code, 'TAG_INVALID', tag)
      assert.match(err.message, /expected \[A-Za-z0-9_\]\[A-Za-z0-9_.-\]\{0,127\}/)
    }
    assert.deepEqual(parseRegistryPath(`/v2/alpine/manifests/${'x'.repeat(128)}`), {
      kind: 'manifest',
      name: 'alpine',
      reference: 'x'.repeat(128)
    })
  })
})
