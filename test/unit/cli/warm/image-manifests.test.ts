import assert from 'node:assert/strict'
import {
  chooseEntries,
  configPlatform,
  DescriptorSchema,
  ImageManifestSchema,
  IndexSchema,
  isIndex,
  type Descriptor
} from '../../../../src/cli/warm/image-manifests.js'
import { UnusableImageError } from '../../../../src/cli/warm/errors.js'
import { DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../../../../src/oci/media-types.js'

const digest = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`

function entry (platform: Descriptor['platform'], c: string, annotations?: Record<string, string>): Descriptor {
  return {
    mediaType: OCI_MANIFEST,
    digest: digest(c),
    size: 100,
    ...(platform !== undefined ? { platform } : {}),
    ...(annotations !== undefined ? { annotations } : {})
  }
}

const amd64 = entry({ os: 'linux', architecture: 'amd64' }, 'a')
const armV6 = entry({ os: 'linux', architecture: 'arm', variant: 'v6' }, 'b')
const armV7 = entry({ os: 'linux', architecture: 'arm', variant: 'v7' }, 'c')
const arm64 = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 'd')
const attestation = entry({ os: 'unknown', architecture: 'unknown' }, 'e', { 'vnd.docker.reference.type': 'attestation-manifest' })
const INDEX = [amd64, armV6, armV7, arm64, attestation]

describe('warm: reading image indexes and manifests', () => {
  it('an index is known by its media type, or by a manifests list without layers when the type is missing', () => {
    assert.equal(isIndex(OCI_INDEX, {}), true)
    assert.equal(isIndex(DOCKER_MANIFEST_LIST, {}), true)
    assert.equal(isIndex('', { manifests: [] }), true)
    assert.equal(isIndex(OCI_MANIFEST, { config: {}, layers: [] }), false)
    assert.equal(isIndex('', { manifests: [], layers: [] }), false)
    assert.equal(isIndex('', null), false)
    assert.equal(isIndex('', 'manifests'), false)
  })

  it('picks the one entry for the platform asked for, never an attestation', () => {
    assert.deepEqual(chooseEntries(INDEX, { all: false, platform: { os: 'linux', architecture: 'amd64' } }, 'img'), [amd64])
    assert.deepEqual(chooseEntries(INDEX, { all: false, platform: { os: 'linux', architecture: 'arm64' } }, 'img'), [arm64])
  })

  it('an exact variant wins; without a variant asked for, the normal one (arm/v7, arm64/v8) is preferred, else any', () => {
    assert.deepEqual(chooseEntries(INDEX, { all: false, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }, 'img'), [armV7])
    assert.deepEqual(chooseEntries(INDEX, { all: false, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } }, 'img'), [armV6])
    assert.deepEqual(
      chooseEntries(INDEX, { all: false, platform: { os: 'linux', architecture: 'arm' } }, 'img'),
      [armV7],
      'arm means arm/v7'
    )
    assert.deepEqual(chooseEntries([armV6], { all: false, platform: { os: 'linux', architecture: 'arm' } }, 'img'), [armV6], 'else any arm')
    assert.deepEqual(chooseEntries(INDEX, { all: false, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }, 'img'), [arm64])
  })

  it('--all-platforms takes every runnable entry, leaving attestations out', () => {
    const unknownOs = entry({ os: 'unknown', architecture: 'unknown' }, 'f')
    assert.deepEqual(chooseEntries([...INDEX, unknownOs], { all: true }, 'img'), [amd64, armV6, armV7, arm64])
  })

  it('a platform the image lacks is an error listing what it has and what to pass', () => {
    assert.throws(
      () => chooseEntries(INDEX, { all: false, platform: { os: 'windows', architecture: 'amd64' } }, 'alpine:3.20'),
      (err: unknown) => {
        assert.ok(err instanceof UnusableImageError)
        assert.equal(
          err.message,
          'alpine:3.20 has no windows/amd64 image (it has: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8)'
        )
        assert.equal(err.hint, 'pass --platform with one of those, or --all-platforms')
        return true
      }
    )
    assert.throws(
      () => chooseEntries([attestation], { all: false, platform: { os: 'linux', architecture: 'amd64' } }, 'x'),
      /\(it has: no platforms\)$/
    )
  })

  it("reads a single-platform image's platform from its config, or nothing from a config that is not one", () => {
    assert.deepEqual(configPlatform(Buffer.from('{"os":"linux","architecture":"arm","variant":"v7","rootfs":{}}')), {
      os: 'linux',
      architecture: 'arm',
      variant: 'v7'
    })
    assert.deepEqual(configPlatform(Buffer.from('{"os":"linux","architecture":"amd64"}')), { os: 'linux', architecture: 'amd64' })
    assert.equal(configPlatform(undefined), undefined)
    assert.equal(configPlatform(Buffer.from('not json')), undefined)
    assert.equal(configPlatform(Buffer.from('{"os":"linux"}')), undefined)
    assert.equal(configPlatform(Buffer.from('{"os":1,"architecture":"amd64"}')), undefined)
  })

  it('refuses descriptors a registry could use to send warm elsewhere: bad digests, negative or fractional sizes', () => {
    assert.equal(DescriptorSchema.safeParse({ digest: digest('a'), size: 0 }).success, true)
    for (const bad of [
      { digest: 'sha256:abc', size: 1 },
      { digest: `sha256:${'A'.repeat(64)}`, size: 1 },
      { digest: `sha512:${'a'.repeat(128)}`, size: 1 },
      { digest: `sha256:${'a'.repeat(64)}/../x`, size: 1 },
      { digest: digest('a'), size: -1 },
      { digest: digest('a'), size: 1.5 },
      { digest: digest('a') }
    ]) assert.equal(DescriptorSchema.safeParse(bad).success, false, JSON.stringify(bad))
  })

  it('an image manifest needs a config and a list of layers; an index a list of manifests', () => {
    assert.equal(ImageManifestSchema.safeParse({ config: { digest: digest('a'), size: 1 }, layers: [] }).success, true)
    assert.equal(ImageManifestSchema.safeParse({ layers: [] }).success, false)
    assert.equal(IndexSchema.safeParse({ manifests: [{ digest: digest('a'), size: 1 }] }).success, true)
    assert.equal(IndexSchema.safeParse({ manifests: [{ digest: 'nope', size: 1 }] }).success, false)
  })
})
